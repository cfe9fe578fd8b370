"""Compiling an equation-defined spec into a :class:`System` that every solver runs unchanged.

The system is a chain of T ``equation`` stages: stage t maps the state batch x_t (S × n) to
x_{t+1} = f(x_t, u_t, t) with the lambdified dynamics; its controls θ_t are the named controls at
time t (one tensor of shape (1,) per name, called ``t<t>.<name>``). The terminal cost is Φ(x_T)
per sample; the running costs L_t(x_t, u_t) enter J and H_t through :class:`EquationSystem`.

Costs are deterministic: there are no labels, so ``y`` is ignored (``None`` is accepted
everywhere a network system takes labels; solvers may pass any tensor, e.g.
:meth:`EquationSystem.batch`'s dummy).
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..ops.base import ControlDecl, Op
from ..errors import SpecError, cut
from ..explain import describe, summary
from ..system import Control, Costates, Stage, States, System
from .backends import column
from .derivatives import SymbolicModel

if TYPE_CHECKING:
    from ..modelspec.model import EquationModelSpec


class EquationOp(Op):
    """The map x_{t+1} = f(x_t, u_t, t) of an equation-defined system (one per compiled model;
    not in the op registry, since its parameters are compiled sympy functions)."""

    name = "equation"
    doc = "x_(t+1) = f(x_t, u_t, t) from the model's dynamics expressions"

    def __init__(self, model: SymbolicModel):
        self.model = model
        self._f = model.function("f")

    def controls(self, p, in_shapes):
        return [ControlDecl(n, (1,), cs) for n, cs in self.model.eq.controls]

    def flops(self, p, in_shapes, out):
        import sympy as sp
        return int(sum(sp.count_ops(e) for e in self.model.f))

    def call(self, name: str, x: torch.Tensor, u: dict[str, torch.Tensor], t: int,
             p: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Evaluate the model's function ``name`` on the batch: columns of x (and p), the controls
        by short name, the stage index t and S = the batch size."""
        m = self.model
        cols = list(x.unbind(1))
        pc = list(p.unbind(1)) if p is not None else [0.0] * len(m.p)
        us = [u[n].reshape(()) for n in m.eq.control_names]
        out = m.function(name)(*cols, *us, *pc, t, x.shape[0])
        return [column(v, x[:, 0]) for v in out]

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return torch.stack(self.call("f", xs[0], theta, p["t"]), dim=1)


class EquationSystem(System):
    """A :class:`System` whose objective and Hamiltonians also carry the running cost:

        J = (1/S) Σ_s Φ(x_{s,T}) + (1/S) Σ_s Σ_t L(x_{s,t}, u_t, t)
        Σ_s H_t = Σ_s p_{s,t+1}·f(x_{s,t}, u_t, t) − (1/S) Σ_s L(x_{s,t}, u_t, t)

    ``y`` is ignored. :meth:`symbolic_costates` gives p_t and M_t from the sympy-derived
    ∇_x H and ∇_u H (an independent check of the autograd ones)."""

    model: SymbolicModel
    autocast_refusal = "equation-defined systems are integrated in their own dtype"

    def initial_state(self) -> torch.Tensor:
        """x_0, one row per sample (S × n)."""
        return torch.tensor(self.spec.system.initial, device=self.device, dtype=self.dtype)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0, dummy labels): the full batch to hand to ``solver.step``."""
        x0 = self.initial_state()
        return x0, torch.zeros(x0.shape[0], device=self.device, dtype=self.dtype)

    def _u(self, t: int, theta: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        th = theta or {}
        return {n: th.get(f"t{t}.{n}", self.theta[f"t{t}.{n}"]) for n in self.model.eq.control_names}

    def running_cost(self, t: int, x: torch.Tensor,
                     theta: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L(x_{s,t}, u_t, t) per sample (S,)."""
        return self.stages[t].op.call("L", x, self._u(t, theta), t)[0]

    def objective(self, states: States, y: torch.Tensor | None = None, *,
                  include_l1: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        J, loss = super().objective(states, y, include_l1=include_l1)
        theta = states.theta or self.theta
        S = states.x[0].shape[0]
        for t in range(self.T):
            J = J + self.running_cost(t, states.x[t], theta).sum() / S
        return J, loss

    def costates(self, states: States, y: torch.Tensor | None = None, *,
                 need_p: bool = True) -> Costates:
        return super().costates(states, y, need_p=need_p)

    def _hamiltonian_of(self, t: int, xs: Sequence[torch.Tensor], p_next: torch.Tensor,
                        f: torch.Tensor, theta: dict[str, torch.Tensor] | None, *,
                        include_l1: bool) -> torch.Tensor:
        """Σ_s H_t from f: the network Hamiltonian minus (1/S) Σ_s L(x_{s,t}, u_t, t)."""
        H = super()._hamiltonian_of(t, xs, p_next, f, theta, include_l1=include_l1)
        return H - self.running_cost(t, xs[0], theta).sum() / xs[0].shape[0]

    def symbolic_costates(self, states: States) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """(p, M) from the sympy derivatives: p[t] for t = 1..T (p[0] = p_0 too) and
        M[t<t>.<u>] = Σ_s ∂H_t/∂u, with p_T = −(1/S)∇Φ(x_T) and p_t = ∇_x H_t(x_t, p_{t+1}, u_t)."""
        with torch.no_grad():
            xs = [x.detach() for x in states.x]
            op: EquationOp = self.stages[0].op
            p: list[torch.Tensor] = [None] * (self.T + 1)  # type: ignore[list-item]
            p[self.T] = torch.stack(op.call("pT", xs[-1], self._u(0), self.T), dim=1)
            M: dict[str, torch.Tensor] = {}
            for t in reversed(range(self.T)):
                u = self._u(t)
                du = op.call("dH_du", xs[t], u, t, p[t + 1])
                for n, g in zip(self.model.eq.control_names, du):
                    M[f"t{t}.{n}"] = g.sum().reshape(1)
                p[t] = torch.stack(op.call("dH_dx", xs[t], u, t, p[t + 1]), dim=1)
        return p, M


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stages(eq: Any, op: EquationOp, gen: torch.Generator, device: torch.device,
            dtype: torch.dtype, flops: int, stages: list[Stage], controls: list[Control],
            theta: dict[str, torch.Tensor]) -> None:
    """Stage t = 0..T−1 with its controls t<t>.<name>, drawn from ``gen`` in stage order."""
    n = eq.n
    for t in range(eq.horizon):
        st = Stage(f"t{t}", op, {"t": t}, [(n,)], (n,), (t,), t)
        st.flops = flops
        for d in op.controls({}, [(n,)]):
            full = f"t{t}.{d.name}"
            value = d.default.init(d.shape, generator=gen, dtype=torch.float64)
            theta[full] = value.to(device=device, dtype=dtype).requires_grad_(True)
            controls.append(Control(full, t, st.name, d.name, d.shape, d.default))
            st.controls[d.name] = full
        stages.append(st)


def _chain(stages: list[Stage]):
    """The DAG input → t0 → t1 → … of the stages."""
    import networkx as nx
    g = nx.DiGraph()
    g.add_node("input", index=-1, op="input")
    prev = "input"
    for t, st in enumerate(stages):
        g.add_node(st.name, index=t, op="equation")
        g.add_edge(prev, st.name, slot=0)
        prev = st.name
    return g


def compile_equations(spec: EquationModelSpec, device: torch.device, dtype: torch.dtype,
                      seed: int = 0) -> EquationSystem:
    """Build the :class:`EquationSystem` of an equation-defined spec (controls initialised from
    ``torch.Generator().manual_seed(seed)`` in stage order, then moved to ``device``). sympy's
    failures on expressions it cannot handle (after the checks of :mod:`ocdl.symbolic.expr_bounds`)
    are a :class:`SpecError` on ``system``."""
    try:
        return _compile_equations(spec, device, dtype, seed)
    except SpecError:
        raise
    except (RecursionError, MemoryError, OverflowError, ValueError, ZeroDivisionError) as e:
        raise SpecError(f"sympy cannot compile these equations ({type(e).__name__}: "
                        f"{cut(str(e), 100)}); simplify the expressions", path="system") from e


def _compile_equations(spec: EquationModelSpec, device: torch.device, dtype: torch.dtype,
                       seed: int) -> EquationSystem:
    eq = spec.system
    model = SymbolicModel(eq)
    op = EquationOp(model)
    gen = torch.Generator().manual_seed(seed)
    n = eq.n
    stages: list[Stage] = []
    controls: list[Control] = []
    theta: dict[str, torch.Tensor] = {}
    flops = op.flops({}, [(n,)], (n,))  # the same map at every t
    with _gc_paused():  # T × (controls) small objects: the cyclic GC would double the time
        _stages(eq, op, gen, device, dtype, flops, stages, controls, theta)
        graph = _chain(stages)
    phi = model.function("Phi")

    def terminal(out: torch.Tensor, y: Any = None) -> torch.Tensor:
        cols = list(out.unbind(1))
        zeros = [0.0] * (len(model.u) + len(model.p))
        return column(phi(*cols, *zeros, eq.horizon, out.shape[0])[0], out[:, 0])

    with _gc_paused():
        system = EquationSystem(spec, stages, controls, theta, terminal, {}, device, dtype,
                                graph=graph)
    system.model = model
    return system


@describe.register
def equations_text(system: EquationSystem, latex: bool = False) -> str:
    """Summary of an equation-defined system (states, controls, horizon) and its equations:
    dynamics, H_t, terminal costate, costate equations p_t = ∂H_t/∂x and stationarity
    ∂H_t/∂u = 0, as text (sympy ``sstr``) or LaTeX."""
    model = system.model
    eq = model.eq
    ctrl = ", ".join(f"{n} ∈ {cs.describe()}" for n, cs in eq.controls)
    consts = ", ".join(f"{n} = {v:g}" for n, v in eq.constants) or "none"
    head = (f"{system.spec.name}: states ({', '.join(eq.states)}), controls {ctrl} per stage, "
            f"T = {eq.horizon}, S = {eq.S} initial state(s); constants: {consts}\n"
            f"J = (1/S) Σ_s Φ(x_T) + (1/S) Σ_s Σ_t L(x_t, u_t, t) with L = {eq.running}, "
            f"Φ = {eq.terminal}")
    if latex:
        head = "% " + head.replace("\n", "\n% ")
    return head + "\n" + model.explain_text(latex=latex)


@summary.register
def equations_summary(system: EquationSystem) -> dict[str, Any]:
    """``ocdl explain --json`` of an equation-defined system: states, controls with their sets,
    horizon T, S, constants, costs, and each equation as {label, lhs, rhs} (sympy ``sstr``)."""
    model = system.model
    eq = model.eq
    import sympy as sp
    return {"name": system.spec.name, "kind": "equations", "states": list(eq.states),
            "controls": [{"name": n, "set": cs.describe()} for n, cs in eq.controls],
            "T": eq.horizon, "S": eq.S, "constants": dict(eq.constants),
            "running": str(eq.running), "terminal": str(eq.terminal),
            "equations": [{"label": label, "lhs": str(lhs), "rhs": sp.sstr(rhs)}
                          for label, lhs, rhs in model.equations()]}

