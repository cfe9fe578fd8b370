"""The same optimal control problem in casadi, solved by IPOPT (real and box controls) or bonmin
(finite sets), for checking ocdl's solvers against an independent optimiser.

The problem is built from the compiled :class:`~ocdl.system.System`, so the control layout is
the System's: one casadi vector ``U`` holds every control entry, control by control in
``system.controls`` order, each flattened row-major (torch's order). Two kinds of systems:

* equation-defined (:class:`~ocdl.symbolic.EquationSystem`): the sympy expressions of f, L, Φ
  lambdified onto casadi SX, rolled out from every initial state (single shooting);
* small networks of ``dense``, ``tanh``, ``relu``, ``sigmoid``, ``hardtanh``, ``equation``,
  ``residual`` and ``add`` stages with an ``mse`` terminal cost and l2 running costs on fixed
  data (x, y).

J(U) is the ocdl objective (1/S) Σ_s Φ + (1/S) Σ_s Σ_t L_t (l1 costs included). A perturbation
δ_t added to every state update (x_{t+1} = f_t(x_t, u_t) + δ_t, at δ = 0) gives casadi's own
costates p_{t+1} = −∂J/∂δ_t by automatic differentiation.

Finite sets are encoded for bonmin: evenly spaced levels l_1 + d·k with an integer k ∈ [0, K−1]
(binary, ternary, uniform k-bit sets), any other set by one-hot binaries b_k with Σ_k b_k = 1 and
u = Σ_k l_k b_k.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..controls import Box, Levels
from ..errors import OcdlError
from ..symbolic.system import EquationSystem
from ..system import System


def require_casadi():
    """Import casadi or raise a one-line :class:`OcdlError` saying how to install it."""
    try:
        import casadi
    except ImportError:
        raise OcdlError("casadi is not installed; `ocdl check` needs it: pip install "
                        "'ocdl[casadi]' (or pip install casadi)") from None
    return casadi


@dataclass
class CasadiProblem:
    """J(U, δ) as casadi functions, the layout of U and the control sets."""

    U: Any  # SX vector of all controls
    delta: Any  # SX vector of the state perturbations (0 at the solution)
    J: Any  # SX scalar
    layout: list[tuple[str, tuple[int, ...], int, int]]  # name, shape, start, stop
    sets: list[Any]
    delta_layout: list[tuple[int, tuple[int, ...], int, int]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.U.shape[0])

    def vector(self, theta: dict[str, torch.Tensor]) -> np.ndarray:
        """U from a θ mapping (control name → tensor)."""
        return np.concatenate([theta[n].detach().cpu().double().reshape(-1).numpy()
                               for n, _, _, _ in self.layout])

    def theta(self, U: np.ndarray, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """θ mapping from a U vector (same dtype/device as ``like``)."""
        out = {}
        for n, shape, a, b in self.layout:
            ref = like[n]
            out[n] = torch.tensor(np.asarray(U[a:b]).reshape(shape), dtype=ref.dtype,
                                  device=ref.device)
        return out


def _sym_theta(system, ca) -> tuple[Any, dict[str, Any], list, list]:
    U = ca.SX.sym("U", system.num_params())
    layout, sets, th = [], [], {}
    k = 0
    for c in system.controls:
        n = c.numel
        layout.append((c.name, c.shape, k, k + n))
        sets.append(c.cset)
        th[c.name] = U[k:k + n]
        k += n
    return U, th, layout, sets


def build_problem(system, x0: torch.Tensor | None = None, y: torch.Tensor | None = None
                  ) -> CasadiProblem:
    """casadi J(U, δ) of ``system`` (an EquationSystem, or a small network with data x0, y)."""
    ca = require_casadi()
    U, th, layout, sets = _sym_theta(system, ca)
    J, delta, dl = objective(system, th, ca, x0, y)
    for c in system.controls:
        if c.l1:
            J = J + c.l1 * ca.sum1(ca.fabs(th[c.name]))
        if c.l2:
            J = J + c.l2 * ca.sumsqr(th[c.name])
    return CasadiProblem(U, delta, J, layout, sets, dl)


@functools.singledispatch
def objective(system: System, th, ca, x0: torch.Tensor | None, y: torch.Tensor | None):
    """casadi (J without l1 costs, δ, δ layout) of a small network on the data (x0, y); an
    equation system's is registered below."""
    if x0 is None or y is None:
        raise OcdlError("checking a network needs its data (x, y); give the model a data "
                        "block with inline points")
    return _network_J(system, th, x0, y, ca)


@objective.register
def _(system: EquationSystem, th, ca, x0=None, y=None):
    return _equation_J(system, th, ca)


def _equation_J(system, th, ca):
    m = system.model
    eq = m.eq
    S, T, n = eq.S, eq.horizon, eq.n
    f = m.function("f", "casadi")
    L = m.function("L", "casadi")
    Phi = m.function("Phi", "casadi")
    delta = ca.SX.sym("delta", T * S * n)
    dl = []
    J = 0
    zero_p = [0.0] * n
    for s in range(S):
        x = [float(v) for v in eq.initial[s]]
        for t in range(T):
            u = [th[f"t{t}.{c}"][0] for c in eq.control_names]
            J = J + L(*x, *u, *zero_p, t, S)[0] / S
            fx = f(*x, *u, *zero_p, t, S)
            k = (t * S + s) * n
            x = [fx[i] + delta[k + i] for i in range(n)]
        J = J + Phi(*x, *[0.0] * len(u), *zero_p, T, S)[0] / S
    for t in range(T):
        dl.append((t, (S, n), t * S * n, (t + 1) * S * n))
    return J, delta, dl


def _network_J(system, th, x0, y, ca):
    if system.spec.cost.terminal != "mse":
        raise OcdlError(f"ocdl check exports networks with an mse terminal cost only, not "
                        f"{system.spec.cost.terminal}")
    X = np.asarray(x0.detach().cpu().double().numpy())
    Y = np.asarray(y.detach().cpu().double().numpy()).reshape(X.shape[0], -1)
    S = X.shape[0]
    xs = [ca.DM(X.T)]  # states as (features × S) matrices
    sizes = []
    for st in system.stages:
        sizes.append(int(np.prod(st.out_shape)))
    delta = ca.SX.sym("delta", sum(sizes) * S)
    dl = []
    k = 0
    for t, st in enumerate(system.stages):
        ins = [xs[i] for i in st.inputs]
        out = _stage(st, ins, th, ca)
        n = sizes[t]
        d = ca.reshape(delta[k:k + n * S], n, S)  # column-major: sample s is column s
        dl.append((t, (S, n), k, k + n * S))
        k += n * S
        xs.append(out + d)
    out = xs[-1]
    J = ca.sumsqr(out - ca.DM(Y.T)) / (S * out.shape[0])
    for t, w in system.state_costs.items():
        for i in system.stages[t].inputs:
            J = J + w * ca.sumsqr(xs[i]) / S
    return J, delta, dl


def _stage(st, ins, th, ca):
    x = ins[0]
    op = st.op.name
    if st.children:
        g = x
        for c in st.children:
            g = _stage(c, [g], th, ca)
        return x + st.params["h"] * g
    if op == "dense":
        W = th[st.controls["weight"]]
        units, n_in = st.params["units"], st.in_shapes[0][0]
        Wm = ca.reshape(W, n_in, units).T  # row-major torch (units × in) from column-major reshape
        out = ca.mtimes(Wm, x)
        if "bias" in st.controls:
            out = out + ca.repmat(th[st.controls["bias"]], 1, x.shape[1])
        return out
    if op == "tanh":
        return ca.tanh(x)
    if op == "relu":
        return ca.fmax(x, 0)
    if op == "sigmoid":
        return 1 / (1 + ca.exp(-x))
    if op == "hardtanh":
        return ca.fmin(ca.fmax(x, -1), 1)
    if op == "equation":  # sympy → casadi: each row of x is one variable over the S samples
        fn = st.op.compiled(st.params).function("casadi")
        us = [th[st.controls[n]][0] for n in st.op.compiled(st.params).controls]
        rows = fn(*[x[i, :] for i in range(x.shape[0])], *us)
        return ca.vertcat(*[r if isinstance(r, (ca.SX, ca.MX, ca.DM)) and r.shape[1] == x.shape[1]
                            else ca.repmat(r, 1, x.shape[1]) for r in rows])
    if op == "add":
        out = ins[0]
        for other in ins[1:]:
            out = out + other
        return out
    raise OcdlError(f"ocdl check cannot export a {op} stage to casadi (supported: dense, tanh, "
                    "relu, sigmoid, hardtanh, equation, residual, add)")


# ---------------------------------------------------------------------- solving
@dataclass
class CasadiResult:
    U: np.ndarray
    J: float
    solver: str
    status: str
    success: bool


def _even(values: tuple[float, ...]) -> float | None:
    d = values[1] - values[0]
    ok = all(abs((b - a) - d) <= 1e-12 * max(1.0, abs(d)) for a, b in zip(values, values[1:]))
    return d if ok else None


def solve(problem: CasadiProblem, U0: np.ndarray | None = None, *, max_iter: int = 3000,
          tol: float = 1e-12, verbose: bool = False) -> CasadiResult:
    """Minimise J(U, δ=0) over the admissible sets: IPOPT when every control is real or box,
    else bonmin with the integer encoding of the module docstring."""
    ca = require_casadi()
    Jfun = ca.Function("J", [problem.U, problem.delta], [problem.J])
    zero = ca.DM.zeros(problem.delta.shape[0])
    discrete = any(isinstance(s, Levels) for s in problem.sets)
    ws, lbw, ubw, disc, w0 = [], [], [], [], []
    g, lbg, ubg = [], [], []
    parts = []
    for (name, shape, a, b), cs in zip(problem.layout, problem.sets):
        n = b - a
        start = U0[a:b] if U0 is not None else np.zeros(n)
        if isinstance(cs, Levels):
            vals = tuple(cs.values)
            d = _even(vals)
            if d is not None:
                k = ca.SX.sym(f"k_{name}", n)
                ws.append(k)
                lbw += [0.0] * n
                ubw += [float(len(vals) - 1)] * n
                disc += [True] * n
                w0 += list(np.clip(np.round((start - vals[0]) / d), 0, len(vals) - 1))
                parts.append(vals[0] + d * k)
            else:
                K = len(vals)
                bvar = ca.SX.sym(f"b_{name}", n * K)
                ws.append(bvar)
                lbw += [0.0] * (n * K)
                ubw += [1.0] * (n * K)
                disc += [True] * (n * K)
                u = []
                for i in range(n):
                    bi = bvar[i * K:(i + 1) * K]
                    g.append(ca.sum1(bi))
                    lbg.append(1.0)
                    ubg.append(1.0)
                    u.append(ca.dot(ca.DM(list(vals)), bi))
                    near = int(np.argmin([abs(v - start[i]) for v in vals]))
                    w0 += [1.0 if j == near else 0.0 for j in range(K)]
                parts.append(ca.vertcat(*u))
        else:
            v = ca.SX.sym(f"u_{name}", n)
            ws.append(v)
            lo, hi = (cs.lo, cs.hi) if isinstance(cs, Box) else (-ca.inf, ca.inf)
            lbw += [lo] * n
            ubw += [hi] * n
            disc += [False] * n
            w0 += list(np.clip(start, lo, hi)) if isinstance(cs, Box) else list(start)
            parts.append(v)
    w = ca.vertcat(*ws)
    Uw = ca.vertcat(*parts)
    f = Jfun(Uw, zero)
    nlp = {"x": w, "f": f}
    if g:
        nlp["g"] = ca.vertcat(*g)
    if discrete:
        opts = {"discrete": disc, "bonmin.print_level": 0 if not verbose else 1,
                "print_time": False, "bonmin.algorithm": "B-BB",
                "bonmin.integer_tolerance": 1e-9, "bonmin.allowable_gap": 0.0,
                "bonmin.allowable_fraction_gap": 0.0}
        name = "bonmin"
        if not verbose:
            opts["bonmin.bb_log_level"] = 0
            opts["bonmin.nlp_log_level"] = 0
    else:
        opts = {"ipopt.print_level": 5 if verbose else 0, "print_time": False,
                "ipopt.tol": tol, "ipopt.max_iter": max_iter, "ipopt.sb": "yes"}
        name = "ipopt"
    solver = ca.nlpsol("check", name, nlp, opts)
    args = {"x0": w0, "lbx": lbw, "ubx": ubw}
    if g:
        args.update(lbg=lbg, ubg=ubg)
    sol = solver(**args)
    stats = solver.stats()
    Ufun = ca.Function("U", [w], [Uw])
    U = np.asarray(Ufun(sol["x"])).reshape(-1)
    if discrete:  # snap to the exact levels
        for (n_, shape, a, b), cs in zip(problem.layout, problem.sets):
            if isinstance(cs, Levels):
                vals = np.asarray(cs.values)
                U[a:b] = vals[np.abs(U[a:b, None] - vals[None, :]).argmin(axis=1)]
    J = float(Jfun(U, zero))
    return CasadiResult(U, J, name, str(stats.get("return_status", "")),
                        bool(stats.get("success", False)))


def gradients(problem: CasadiProblem, U: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(∇_U J, costates) by casadi's automatic differentiation at U: p_{t+1} = −∂J/∂δ_t as
    (S × n) arrays, t = 0..T−1 (so the list holds p_1..p_T)."""
    ca = require_casadi()
    fn = ca.Function("grads", [problem.U, problem.delta],
                     [ca.gradient(problem.J, problem.U), ca.gradient(problem.J, problem.delta)])
    gU, gD = fn(U, ca.DM.zeros(problem.delta.shape[0]))
    gU = np.asarray(gU).reshape(-1)
    gD = np.asarray(gD).reshape(-1)
    ps = []
    for t, (S, n), a, b in problem.delta_layout:
        seg = -gD[a:b]
        ps.append(seg.reshape(S, n))  # both layouts put sample s, entry i at s·n + i
    return gU, ps
