"""``ocdl check``: solve a small model with an ocdl solver and with casadi, and compare.

The ocdl solver runs ``iters`` iterations on the full batch (the initial states of an equation
system, the inline data of a network: ``data: {name: inline, x, y}``); casadi solves the same
problem (IPOPT for real/box controls, bonmin for finite sets) from the same initial controls
(ocdl's initial point), so on a nonconvex problem (a network) both are compared from one start;
their controls may still differ by a symmetry of the network (hidden units permuted or flipped in
sign) at equal objectives. The report holds both
objectives, the gap |J_ocdl − J_casadi| / max(1, |J_casadi|) (relative for |J| ≥ 1, absolute
below), the largest control difference, both solutions' Pontryagin residuals
(:mod:`ocdl.check.residuals`) and, at ocdl's controls, the largest difference between ocdl's
M = Σ_s ∇_θ H = −∇J and costates and casadi's automatic derivatives of J.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import OcdlError
from ..modelspec import ModelSpec, load_spec
from ..symbolic.system import EquationSystem
from ..system import System
from .casadi_export import build_problem, gradients, require_casadi, solve
from .residuals import costate_residual, hamiltonian_gap, set_theta

DEFAULT_ITERS = 200
# Networks (inline data): full-batch Adam. E-MSA's per-stage L-BFGS maximiser converges slowly on
# a tanh network's ill-conditioned objective (measured on the shipped tiny-tanh-net: objective gap
# 4.7e-3 after 150 iterations, 5 s), Adam with lr 1e-2 reaches IPOPT's optimum to ~1e-9 in 6000
# iterations (3 s on a CPU).
NETWORK_SOLVER = "adam"
NETWORK_OVERRIDES = {"lr": 1.0e-2}
NETWORK_ITERS = 6000


@dataclass
class Side:
    """One solution: objective, Pontryagin residuals, the controls (U vector)."""

    J: float
    costate_residual: float
    hamiltonian_gap: float
    U: np.ndarray


@dataclass
class CheckReport:
    model: str
    solver: str
    iterations: int
    casadi_solver: str
    casadi_status: str
    ocdl: Side
    casadi: Side
    gap: float
    control_diff: float
    grad_diff: float  # max |M_ocdl − (−∇_U J_casadi)| at ocdl's controls
    costate_diff: float  # max |p_ocdl − p_casadi| at ocdl's controls
    tol: float
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return math.isfinite(self.gap) and self.gap <= self.tol

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values (``ocdl check --json``), without the control vectors:
        both sides' J and residuals, the gaps, the verdict and the timings."""
        def side(s: Side) -> dict[str, float]:
            return {"J": s.J, "costate_residual": s.costate_residual,
                    "hamiltonian_gap": s.hamiltonian_gap}
        return {"model": self.model, "solver": self.solver, "iterations": self.iterations,
                "casadi_solver": self.casadi_solver, "casadi_status": self.casadi_status,
                "ocdl": side(self.ocdl), "casadi": side(self.casadi), "gap": self.gap,
                "tol": self.tol, "ok": self.ok, "control_diff": self.control_diff,
                "grad_diff": self.grad_diff, "costate_diff": self.costate_diff,
                "seconds": dict(self.seconds)}


@dataclass
class Plan:
    """How ``ocdl check`` runs ocdl on a kind of system: the full batch (x_0, y), the default
    solver with its settings, and the default number of iterations."""

    x0: torch.Tensor
    y: torch.Tensor
    solver: str
    overrides: dict[str, Any]
    iters: int


@functools.singledispatch
def plan(system: System) -> Plan:
    """A network: its inline data (``data: {name: inline, x, y}``), full-batch Adam (lr 1e-2)
    when its controls are real, E-MSA's finite-set preset otherwise."""
    x0, y = _inline_data(system)
    if any(c.cset.discrete for c in system.controls):
        return Plan(x0, y, "emsa-ocp-discrete", {}, NETWORK_ITERS)
    return Plan(x0, y, NETWORK_SOLVER, dict(NETWORK_OVERRIDES), NETWORK_ITERS)


@plan.register
def _(system: EquationSystem) -> Plan:
    """An equation system: its initial states, ``emsa-ocp`` (``emsa-ocp-discrete`` when a
    control has a finite set)."""
    x0, y = system.batch()
    discrete = any(c.cset.discrete for c in system.controls)
    return Plan(x0, y, "emsa-ocp-discrete" if discrete else "emsa-ocp", {}, DEFAULT_ITERS)


def _inline_data(system: System) -> tuple[torch.Tensor, torch.Tensor]:
    data = system.spec.data
    if data is None or getattr(data, "inline", None) is None:
        raise OcdlError(f"model '{system.spec.name}' has no inline data; ocdl check runs "
                        "networks on fixed points: data: {name: inline, x: [[...]], y: [[...]]}")
    x, y = data.inline
    xt = torch.tensor(x, dtype=system.dtype, device=system.device)
    if y and isinstance(y[0], int):  # class labels: mse's one-hot targets, as ocdl.costs.mse
        k = int(np.prod(system.output_shape))
        if max(y) >= k:
            raise OcdlError(f"label {max(y)} of the inline data does not fit the network's {k} "
                            "outputs")
        yt = torch.nn.functional.one_hot(torch.tensor(y), k).to(system.dtype).to(system.device)
        return xt, yt
    return xt, torch.tensor(y, dtype=system.dtype, device=system.device)


def _pmp(system: System, x0: torch.Tensor, y: torch.Tensor, theta: dict[str, torch.Tensor],
         p_given: list[np.ndarray] | None = None) -> tuple[float, float, float, Any]:
    """(J with l1, costate residual, H gap, costates) at ``theta``; ``p_given`` (p_1..p_T as
    arrays) replaces ocdl's costates in the costate residual."""
    set_theta(system, theta)
    system._check_y = y  # type: ignore[attr-defined]
    states = system.forward(x0)
    c = system.costates(states, y)
    J = float(system.objective(states, y, include_l1=True)[0].detach())
    p = list(c.p)
    if p_given is not None:
        p = [None] + [torch.tensor(a, dtype=system.dtype, device=system.device) for a in p_given]
    xs = [xi.detach() for xi in states.x]
    res = costate_residual(system, xs, p)
    gap = hamiltonian_gap(system, xs, [pi.detach() if pi is not None else None for pi in c.p],
                          {k: v.detach() for k, v in c.M.items()})
    return J, res, gap, c


def check(model: str | Path | ModelSpec, solver: str | None = None, *, iters: int | None = None,
          tol: float = 1e-4, overrides: dict[str, Any] | None = None, seed: int = 0,
          perturb: float = 0.0) -> CheckReport:
    """Run the check (see the module docstring). ``perturb`` adds that much to every ocdl
    control after solving (to see the check fail)."""
    import time
    from ..solvers import make_solver
    require_casadi()
    spec = model if isinstance(model, ModelSpec) else load_spec(model)
    system = spec.compile(device="cpu", dtype=torch.float64, seed=seed)
    p = plan(system)
    x0, y = p.x0, p.y
    theta0 = {k: v.detach().clone() for k, v in system.theta.items()}
    name = solver or p.solver
    over = {**(p.overrides if solver is None else {}), **(overrides or {})}
    s = make_solver(name, over)
    n = p.iters if iters is None else iters
    tic = time.perf_counter()
    state = s.init(system)
    for _ in range(n):
        state, _m = s.step(system, state, x0, y)
    if perturb:
        with torch.no_grad():
            for c in system.controls:
                th = system.theta[c.name]
                th.copy_(c.cset.project(th + perturb) if not c.cset.discrete else
                         c.cset.project(th + perturb * 2.0))
    t_ocdl = time.perf_counter() - tic
    theta_ocdl = {k: v.detach().clone() for k, v in system.theta.items()}

    problem = build_problem(system, x0, y)
    tic = time.perf_counter()
    res = solve(problem, problem.vector(theta0))
    t_cas = time.perf_counter() - tic
    theta_cas = problem.theta(res.U, system.theta)

    # casadi's own derivatives: at casadi's solution (its costates) and at ocdl's (to compare)
    _, p_cas = gradients(problem, res.U)
    J_c, r_c, g_c, _ = _pmp(system, x0, y, theta_cas, p_cas)
    J_o, r_o, g_o, c_o = _pmp(system, x0, y, theta_ocdl)
    U_o = problem.vector(theta_ocdl)
    gU, p_at_o = gradients(problem, U_o)
    l1 = np.concatenate([np.full(b - a, system.control[nm].l1) for nm, _, a, b in problem.layout])
    M_o = problem.vector(c_o.M)
    grad_diff = float(np.abs(M_o + gU - l1 * np.sign(U_o)).max()) if U_o.size else 0.0
    costate_diff = max((float(np.abs(c_o.p[t + 1].detach().cpu().numpy() - p_at_o[t]).max())
                        for t in range(len(p_at_o))), default=0.0)
    set_theta(system, theta_ocdl)
    gap = abs(J_o - res.J) / max(1.0, abs(res.J))
    return CheckReport(spec.name, name, n, res.solver, res.status,
                       Side(J_o, r_o, g_o, U_o), Side(res.J, r_c, g_c, res.U), gap,
                       float(np.abs(U_o - res.U).max()) if U_o.size else 0.0, grad_diff,
                       costate_diff, tol, {"ocdl": t_ocdl, "casadi": t_cas})


def render(report: CheckReport):
    """A rich Table of the report, side by side."""
    from rich.table import Table
    r = report
    t = Table(title=f"ocdl check {r.model}: {r.solver} ({r.iterations} iterations) vs casadi "
                    f"{r.casadi_solver} ({r.casadi_status})")
    t.add_column("quantity")
    t.add_column("ocdl", justify="right")
    t.add_column("casadi", justify="right")
    t.add_row("objective J", f"{r.ocdl.J:.10g}", f"{r.casadi.J:.10g}")
    t.add_row("costate residual max|p_t − ∇_x H_t|", f"{r.ocdl.costate_residual:.2e}",
              f"{r.casadi.costate_residual:.2e}")
    t.add_row("H-maximisation gap", f"{r.ocdl.hamiltonian_gap:.2e}",
              f"{r.casadi.hamiltonian_gap:.2e}")
    t.add_row("time (s)", f"{r.seconds.get('ocdl', 0):.2f}", f"{r.seconds.get('casadi', 0):.2f}")
    t.caption = (f"objective gap |ΔJ|/max(1,|J_casadi|) = {r.gap:.2e} (tolerance {r.tol:g}) · "
                 f"max control difference {r.control_diff:.2e} · at ocdl's controls: "
                 f"max|M − (−∇J casadi)| = {r.grad_diff:.2e}, max|p − p casadi| = "
                 f"{r.costate_diff:.2e} · {'PASS' if r.ok else 'FAIL'}")
    return t
