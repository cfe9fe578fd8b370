"""The compiled control system: states forward, costates backward, Hamiltonians per stage.

Notation (DESIGN.md §1): samples s = 1..S, stages t = 0..T−1, states x_{s,t}, controls θ_t.

    x_{s,t+1} = f_t(x_{s,t}, θ_t)
    J(θ) = (1/S) Σ_s Φ(x_{s,T}, y_s) + (1/S) Σ_s Σ_t L_t(x_{s,t}, θ_t)
    H_t(x, p, θ) = p · f_t(x, θ) − (1/S) L_t(x, θ)
    p_{s,T} = −(1/S) ∇Φ(x_{s,T}, y_s),   p_{s,t} = ∇_x H_t(x_{s,t}, p_{s,t+1}, θ_t)
    M_t = Σ_s ∇_θ H_t(x_{s,t}, p_{s,t+1}, θ_t) = −∇_{θ_t} J

Stages may read any earlier states (skip connections, merges): then x_t stands for the tuple of
states stage t reads, and the costate of a state read by several stages is the sum of their
∇_x H contributions. With one forward pass and one reverse pass of torch autograd on J we get
every p_t and M_t exactly (the discrete adjoint); :meth:`System.hamiltonian` evaluates H_t of one
stage on its own, so the two can be checked against each other.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .controls import ControlSet
from .costs import Terminal
from .errors import OcdlError, ShapeError
from .ops.base import Op
from .modelspec.model import ModelSpec


@dataclass
class Control:
    """One control tensor θ of the system: ``name`` is ``stage.param`` (e.g. ``fc1.weight``),
    ``t`` the index of the top-level stage that owns it (a residual block owns its inner
    stages' controls), ``cset`` its admissible set, ``l1``/``l2`` its running-cost weights."""

    name: str
    t: int
    stage: str
    param: str
    shape: tuple[int, ...]
    cset: ControlSet
    l1: float = 0.0
    l2: float = 0.0
    weight: bool = True  # a weight (dense/conv kernel), the default target of l1/l2 costs

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))

    @property
    def has_units(self) -> bool:
        """A weight of two or more dimensions (dense or conv kernel): its rows θ[u, ...] are the
        output units u of its stage."""
        return self.weight and len(self.shape) >= 2


class Stage:
    """A compiled stage: op, validated parameters, the state indices it reads, its control
    names, buffers and (for residual blocks) its inner stages."""

    def __init__(self, name: str, op: Op, params: dict[str, Any], in_shapes: list[tuple[int, ...]],
                 out_shape: tuple[int, ...], inputs: tuple[int, ...] = (), t: int | None = None):
        self.name = name
        self.op = op
        self.params = params
        self.in_shapes = in_shapes
        self.out_shape = out_shape
        self.inputs = inputs
        self.t = t
        self.controls: dict[str, str] = {}  # param -> full control name
        self.buffers: dict[str, torch.Tensor] = {}
        self.children: list[Stage] = []
        self.flops = 0

    def apply(self, xs: Sequence[torch.Tensor], theta: dict[str, torch.Tensor], *, train: bool,
              update_stats: bool, ctx: dict[str, Any]) -> torch.Tensor:
        """f_t(x, θ) for this stage, with θ looked up by full control name in ``theta``."""
        if self.children:  # residual: x + h·g(x)
            g = xs[0]
            for child in self.children:
                g = child.apply([g], theta, train=train, update_stats=update_stats,
                                ctx=ctx.setdefault(child.name, {}))
            return xs[0] + self.params["h"] * g if self.params["h"] != 1.0 else xs[0] + g
        local = {k: theta[v] for k, v in self.controls.items()}
        return self.op.forward(self.params, xs, local, self.buffers, train=train,
                               update_stats=update_stats, ctx=ctx)

    def walk(self):
        """This stage and its inner stages, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, {self.op.name}, out={list(self.out_shape)})"


@dataclass
class States:
    """States x_0..x_T of one forward pass (``x[t]``; ``x[t+1]`` is stage t's output), the
    random draws each stage made (``ctx[t]``) and whether it ran in training mode."""

    x: list[torch.Tensor]
    ctx: list[dict[str, Any]]
    train: bool
    theta: dict[str, torch.Tensor] = field(default_factory=dict)  # the controls used

    @property
    def output(self) -> torch.Tensor:
        return self.x[-1]


@dataclass
class Costates:
    """Result of the reverse pass: ``p[t]`` = p_t for t = 1..T (``p[0]`` is p_0 when the input
    required grad, else None), ``M[name]`` = Σ_s ∇_θ H for each control (the smooth part of −∇J,
    see :meth:`System.costates`), ``J`` the smooth objective and ``loss`` the terminal mean."""

    p: list[torch.Tensor | None]
    M: dict[str, torch.Tensor]
    J: torch.Tensor
    loss: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def laid_out_like(g: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``g`` with ``param``'s strides (a copy only when they differ). ``torch.autograd.grad``
    may return a convolution's weight gradient in channels-last strides (cuDNN, a channels-last
    or one-channel input); the solvers' flat views and torch's fused optimisers need M laid out
    as θ."""
    return g if g.stride() == param.stride() else torch.empty_like(param).copy_(g)


class System:
    """A compiled control system on one device and dtype (built by :func:`ocdl.compile`).

    ``theta`` maps control names to leaf tensors (``requires_grad``); solvers update them in
    place under ``torch.no_grad()``. ``stages[t]`` is f_t; ``controls`` lists every control with
    its admissible set and running-cost weights.
    """

    #: why this kind of system cannot run its forward pass under autocast (``run.amp``), or
    #: None when it can
    autocast_refusal: str | None = None

    def __init__(self, spec: ModelSpec, stages: list[Stage], controls: list[Control],
                 theta: dict[str, torch.Tensor], terminal: Terminal,
                 state_costs: dict[int, float], device: torch.device, dtype: torch.dtype,
                 graph: Any = None):
        self.spec = spec
        self.stages = stages
        self.controls = controls
        self.control = {c.name: c for c in controls}
        self.theta = theta
        self.terminal = terminal
        self.state_costs = state_costs  # t -> λ of (1/S) Σ_s λ‖x_{s,t}‖² on stage t's inputs
        self.device = device
        self.dtype = dtype
        self.graph = graph
        # mixed precision: the forward pass (and so its reverse pass) under torch.autocast with
        # this dtype (set by the run from ``run.amp``); None: everything in ``dtype``
        self.autocast: torch.dtype | None = None
        # memory layout: image batches (N, C, H, W) in channels-last strides (``run.channels_last``)
        self.channels_last = False
        # data-parallel runs (:mod:`ocdl.run.distributed`): the process group whose ranks each
        # hold a shard of the global batch; :meth:`costates` sums M over them. None: one process
        self.data_parallel: Any = None

    # ------------------------------------------------------------------ structure
    @property
    def T(self) -> int:
        """Number of stages."""
        return len(self.stages)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec.input)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.stages[-1].out_shape

    def all_stages(self) -> Iterator[Stage]:
        """Every stage, the top-level ones t = 0..T−1 and the stages nested in them (residual
        blocks' branches), depth first."""
        for top in self.stages:
            yield from top.walk()

    def stage_controls(self, t: int) -> list[Control]:
        """The controls θ_t of stage t."""
        return [c for c in self.controls if c.t == t]

    def num_params(self) -> int:
        return sum(c.numel for c in self.controls)

    def num_nonzero(self) -> int:
        with torch.no_grad():
            return int(sum(int(torch.count_nonzero(self.theta[c.name])) for c in self.controls))

    def nonzero_fraction(self, discrete_only: bool = True) -> float:
        """Fraction of non-zero entries over the discrete controls (all controls if there are
        none or ``discrete_only`` is false)."""
        cs = [c for c in self.controls if c.cset.discrete] if discrete_only else []
        cs = cs or self.controls
        total = sum(c.numel for c in cs)
        if total == 0:
            return 0.0
        with torch.no_grad():
            nz = torch.stack([torch.count_nonzero(self.theta[c.name]) for c in cs]).sum()
        return float(nz) / total

    # ------------------------------------------------------------------ sets
    def project_(self) -> None:
        """θ ← Π_Θ(θ) for every control, in place."""
        with torch.no_grad():
            for c in self.controls:
                t = self.theta[c.name]
                t.copy_(c.cset.project(t))

    def check_sets(self) -> list[str]:
        """Names of controls that are outside their admissible sets."""
        with torch.no_grad():
            return [c.name for c in self.controls if not c.cset.contains(self.theta[c.name])]

    # ------------------------------------------------------------------ dynamics
    def forward(self, x0: torch.Tensor, *, train: bool = True, update_stats: bool | None = None,
                theta: dict[str, torch.Tensor] | None = None,
                replay: States | None = None) -> States:
        """x_{t+1} = f_t(x_t, θ_t) for t = 0..T−1, batched over samples (dim 0).

        ``train`` selects batch statistics and random draws (dropout); ``update_stats`` (default
        ``train``) lets BatchNorm update its running statistics. Runs with autograd when grad mode
        is on, so :meth:`costates` can follow. ``theta`` overrides controls by name; ``replay``
        reuses the random draws (dropout masks) of an earlier pass on the same batch, so J can be
        compared across controls on exactly the same stochastic map.
        """
        if x0.shape[1:] != self.input_shape:
            raise ShapeError(f"input batch has sample shape {list(x0.shape[1:])}, but the model "
                             f"expects {list(self.input_shape)}; flatten or reshape the data")
        theta = self.theta if theta is None else {**self.theta, **theta}
        upd = train if update_stats is None else update_stats
        if self.channels_last and x0.dim() == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        xs = [x0]
        ctxs: list[dict[str, Any]] = []
        grad = torch.is_grad_enabled()
        with self._autocast():
            for t, st in enumerate(self.stages):
                ctx: dict[str, Any] = replay.ctx[t] if replay is not None else {}
                x = st.apply([xs[i] for i in st.inputs], theta, train=train, update_stats=upd,
                             ctx=ctx)
                if grad and not x.requires_grad:  # a state before any control (a flatten or
                    # pool of the input): a leaf of the graph, so the reverse pass gives its p_t
                    x = x.detach().requires_grad_(True)
                xs.append(x)
                ctxs.append(ctx)
        return States(xs, ctxs, train, theta)

    def _autocast(self) -> Any:
        """torch.autocast with ``self.autocast`` (matrix products and convolutions in that dtype,
        their gradients w.r.t. the float32 controls back in float32), or no context at all, so
        that a caller's own autocast stays in force. Without autocast's weight cache, which a
        CUDA graph must not capture (E-MSA's ``cuda_graph: step``) and which saves nothing here:
        each control is cast once per forward pass."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast, cache_enabled=False)

    def predict(self, x0: torch.Tensor) -> torch.Tensor:
        """Network output x_T in evaluation mode (running BatchNorm statistics, no dropout), in
        the system's dtype (also under ``autocast``)."""
        with torch.no_grad():
            return self.forward(x0, train=False).output.to(self.dtype)

    def objective(self, states: States, y: torch.Tensor, *, include_l1: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(J, loss): J = (1/S) Σ_s Φ + state costs + Σ λ₂‖θ‖² (+ Σ λ₁‖θ‖₁ if ``include_l1``);
        loss = (1/S) Σ_s Φ. Control costs use the controls the states were computed with."""
        theta = states.theta or self.theta
        loss = self.terminal(states.output.to(self.dtype), y).mean()  # (autocast: in float32)
        J = loss
        for t, w in self.state_costs.items():
            for i in self.stages[t].inputs:
                x = states.x[i].to(self.dtype)
                J = J + w * x.square().sum() / x.shape[0]
        for c in self.controls:
            if c.l2:
                J = J + c.l2 * theta[c.name].square().sum()
            if include_l1 and c.l1:
                J = J + c.l1 * theta[c.name].abs().sum()
        return J, loss

    def costates(self, states: States, y: torch.Tensor, *, need_p: bool = True) -> Costates:
        """One reverse pass: p_t = −∂J/∂x_t for t = 1..T and M_θ = −∂J/∂θ for every control.

        J here is the smooth objective (terminal, state and l2 costs); the non-smooth l1 terms
        λ‖θ‖₁ are left to the solvers (closed forms for finite sets, proximal steps otherwise), so
        ``M`` is Σ_s ∇_θ H_t of the smooth Hamiltonian. With a single reader per state this is
        exactly p_{s,T} = −(1/S)∇Φ and p_t = ∇_x H_t(x_t, p_{t+1}, θ_t).

        In a data-parallel run (``data_parallel``) rank r differentiates (S_r/S)·J_r, so its p
        is the global batch's costate, and M, J and the loss are summed over the ranks by one
        all-reduce (:meth:`ocdl.run.distributed.DataParallel.reduce_costates`).
        """
        J, loss = self.objective(states, y)
        names = [c.name for c in self.controls]
        targets: list[torch.Tensor] = []
        if need_p:
            targets = [x for x in states.x[1:]]
            if states.x[0].requires_grad:
                targets = [states.x[0]] + targets
        dp = self.data_parallel  # rank r: the reverse pass of (S_r/S)·J_r, then M summed
        w = 1.0 if dp is None else dp.prepare_costates(int(states.x[0].shape[0]))
        grads = torch.autograd.grad(J, targets + [self.theta[n] for n in names],
                                    grad_outputs=torch.full_like(J, -w), allow_unused=True)
        k = len(targets)
        p: list[torch.Tensor | None] = []
        if need_p:
            gs = list(grads[:k])
            if not states.x[0].requires_grad:
                gs = [None] + gs
            p = [g if g is not None or i == 0 else torch.zeros_like(states.x[i])
                 for i, g in enumerate(gs)]
        M = {n: (laid_out_like(g, self.theta[n]) if g is not None
                 else torch.zeros_like(self.theta[n]))
             for n, g in zip(names, grads[k:])}
        if dp is not None:
            J, loss = dp.reduce_costates(M, J, loss, w)
        return Costates(p=p, M=M, J=J.detach(), loss=loss.detach())

    def batch_samples(self, x: torch.Tensor) -> int:
        """S, the samples of the batch ``x`` belongs to: its rows, or in a data-parallel run
        the rows of the global batch whose shard it is."""
        n = int(x.shape[0])
        return n if self.data_parallel is None else self.data_parallel.global_samples(n)

    def rank_share(self, rows: int) -> float:
        """S_r/S: the share of a batch of ``rows`` rows in its global batch (1 on one process).
        A quantity of the whole batch that does not depend on the samples, such as a control
        cost λ‖θ‖, enters each rank's sums with this weight, so that the ranks' sums add up
        (:meth:`sum_over_ranks`) to the single process's."""
        return 1.0 if self.data_parallel is None else self.data_parallel.weight(rows)

    def sum_over_ranks(self, tensors: Sequence[torch.Tensor], what: str) -> None:
        """In a data-parallel run, each tensor ← its sum over the ranks (in place, one
        all-reduce); on one process nothing. For the ranks' shares of sums over the samples of
        the global batch (gradients of Σ_s H, feasibility errors, a replayed J)."""
        if self.data_parallel is not None:
            self.data_parallel.sum_all_(list(tensors), what)

    # ------------------------------------------------------------------ Hamiltonians
    def stage_inputs(self, states: States, t: int) -> list[torch.Tensor]:
        """x_t as read by stage t (one tensor, or several for merges)."""
        return [states.x[i] for i in self.stages[t].inputs]

    def stage_theta(self, t: int) -> dict[str, torch.Tensor]:
        """θ_t: the current control tensors of stage t by full name."""
        return {c.name: self.theta[c.name] for c in self.stage_controls(t)}

    def apply_stage(self, t: int, xs: Sequence[torch.Tensor],
                    theta: dict[str, torch.Tensor] | None = None, *, train: bool = True,
                    ctx: dict[str, Any] | None = None) -> torch.Tensor:
        """f_t(x, θ) without touching BatchNorm running statistics. ``theta`` overrides some
        controls of stage t by full name; ``ctx`` replays the forward pass's random draws."""
        full = self.theta if not theta else {**self.theta, **theta}
        return self.stages[t].apply(list(xs), full, train=train, update_stats=False,
                                    ctx={} if ctx is None else ctx)

    def hamiltonian(self, t: int, x: Sequence[torch.Tensor] | torch.Tensor, p_next: torch.Tensor,
                    theta: dict[str, torch.Tensor] | None = None, *, train: bool = True,
                    ctx: dict[str, Any] | None = None, include_l1: bool = True) -> torch.Tensor:
        """Σ_s H_t(x_{s,t}, p_{s,t+1}, θ) = Σ_s p_{s,t+1}·f_t(x_{s,t}, θ) − Σ_s (1/S) L_t(x_{s,t}, θ).

        ``x`` is what stage t reads, ``p_next`` the costate of its output and ``theta`` overrides
        controls of stage t by full name (default: the current θ_t). Differentiable in x and θ.
        """
        xs = [x] if isinstance(x, torch.Tensor) else list(x)
        f = self.apply_stage(t, xs, theta, train=train, ctx=ctx)
        return self._hamiltonian_of(t, xs, p_next, f, theta, include_l1=include_l1)

    def _hamiltonian_of(self, t: int, xs: Sequence[torch.Tensor], p_next: torch.Tensor,
                        f: torch.Tensor, theta: dict[str, torch.Tensor] | None, *,
                        include_l1: bool) -> torch.Tensor:
        """Σ_s H_t from an evaluated f = f_t(x, θ): p·f minus the running costs of stage t
        (the one place H is assembled: systems with more running costs override it). In a
        data-parallel run, this rank's share: its rows, and the control costs times S_r/S."""
        H = (p_next * f).sum()
        rows = int(xs[0].shape[0])
        w = self.state_costs.get(t)
        if w:
            S = rows if self.data_parallel is None else self.data_parallel.global_samples(rows)
            H = H - w * sum(xi.square().sum() for xi in xs) / S
        th = {c.name: (theta or {}).get(c.name, self.theta[c.name]) for c in self.stage_controls(t)}
        share = self.rank_share(rows)
        for c in self.stage_controls(t):
            if c.l2:
                H = H - share * c.l2 * th[c.name].square().sum()
            if include_l1 and c.l1:
                H = H - share * c.l1 * th[c.name].abs().sum()
        return H

    def grad_x_hamiltonian(self, t: int, x: Sequence[torch.Tensor], p_next: torch.Tensor,
                           theta: dict[str, torch.Tensor] | None = None, *, create_graph: bool,
                           ctx: dict[str, Any] | None = None) -> list[torch.Tensor]:
        """∇_x H_t(x, p_{t+1}, θ) for each tensor stage t reads (differentiable in θ when
        ``create_graph``)."""
        xs = [xi.detach().requires_grad_(True) for xi in x]
        with torch.enable_grad():
            H = self.hamiltonian(t, xs, p_next, theta, ctx=ctx, include_l1=False)
            return list(torch.autograd.grad(H, xs, create_graph=create_graph))

    def augmented_hamiltonian(self, t: int, x: Sequence[torch.Tensor], p_next: torch.Tensor,
                              theta: dict[str, torch.Tensor], rho: float, *,
                              x_next: torch.Tensor | None = None,
                              p_t: Sequence[torch.Tensor] | None = None,
                              ctx: dict[str, Any] | None = None, create_graph: bool = True
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E-MSA's objective for stage t, to be maximised over θ:

            Σ_s H_t(x_{s,t}, p_{s,t+1}, θ) − ρ/2 Σ_s ‖x_{s,t+1} − f_t(x_{s,t}, θ)‖²
                                            − ρ/2 Σ_s ‖p_{s,t} − ∇_x H_t(x_{s,t}, p_{s,t+1}, θ)‖²

        x, p are those of the current controls θ^k: ``x_next`` defaults to f_t(x, θ^k) and
        ``p_t`` to ∇_x H_t(x, p_{t+1}, θ^k) (equal to p_t when the state has one reader).
        Returns the value (differentiable in ``theta``, by double backward, when
        ``create_graph``; else only the numbers) and its parts ``H``, ``state_error`` and
        ``costate_error`` (the two feasibility errors, ≥ 0).

        One evaluation of f_t serves all three terms: H = p·f − L, the state error and, by one
        backward pass to x kept in the graph, ∇_x H.
        """
        p_next = p_next.detach()
        if x_next is None:
            with torch.no_grad():
                x_next = self.apply_stage(t, [xi.detach() for xi in x], ctx=ctx)
        if p_t is None or any(pi is None for pi in p_t):
            p_t = self.grad_x_hamiltonian(t, x, p_next, create_graph=False, ctx=ctx)
        xs = [xi.detach().requires_grad_(True) for xi in x]
        with torch.enable_grad():
            f = self.apply_stage(t, xs, theta, ctx=ctx)
            H = self._hamiltonian_of(t, xs, p_next, f, theta, include_l1=True)
            gx = torch.autograd.grad(H, xs, create_graph=create_graph)  # λ|θ| is constant in x
            state_err = (x_next.detach() - f).square().sum()
            costate_err = sum((pi.detach() - gi).square().sum() for pi, gi in zip(p_t, gx))
            value = H - 0.5 * rho * state_err - 0.5 * rho * costate_err
        return value, {"H": H, "state_error": state_err, "costate_error": costate_err}

    # ------------------------------------------------------------------ persistence
    def to_module(self) -> torch.nn.Module:
        """The network as a plain ``torch.nn.Module`` in evaluation form, x_0 ↦ x_T as
        :meth:`predict` computes it, holding copies of θ and the buffers: an ``nn.Sequential``
        of standard layers named by the stages for a chain, a ``torch.fx.GraphModule`` following
        the DAG otherwise (:mod:`ocdl.to_torch`)."""
        from .to_torch import to_module
        return to_module(self)

    def state_dict(self) -> dict[str, Any]:
        """Controls and buffers (running statistics), detached copies on the CPU."""
        return {"theta": {k: v.detach().cpu().clone() for k, v in self.theta.items()},
                "buffers": {st.name: {k: v.detach().cpu().clone() for k, v in st.buffers.items()}
                            for st in self.all_stages() if st.buffers}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Copy the controls and buffers of ``sd`` (the form :meth:`state_dict` gives) into
        this system, after checking that every name, type and shape fits; a mismatch is an
        :class:`OcdlError` (nothing is copied then)."""
        theta = sd.get("theta") if isinstance(sd, dict) else None
        bufs = sd.get("buffers", {}) if isinstance(sd, dict) else None
        if not isinstance(theta, dict) or not isinstance(bufs, dict):
            raise OcdlError("saved controls are not in the form System.state_dict() writes "
                            "({'theta': {...}, 'buffers': {...}})")
        missing = set(self.theta) ^ set(theta)
        if missing:
            raise OcdlError(f"saved controls do not match this model (differ in: "
                            f"{', '.join(sorted(map(str, missing))[:8])}); was it saved from "
                            "another spec?")
        stages = {st.name: st for st in self.all_stages()}
        pairs = [(f"control {k}", v, self.theta[k]) for k, v in theta.items()]
        for name, b in bufs.items():
            st = stages.get(name)
            if st is None or not isinstance(b, dict) or set(b) - set(st.buffers):
                raise OcdlError(f"saved buffers of '{str(name)[:40]}' do not match this model; "
                                "was it saved from another spec?")
            pairs += [(f"buffer {name}.{k}", v, st.buffers[k]) for k, v in b.items()]
        for what, v, own in pairs:
            if not isinstance(v, torch.Tensor) or not (v.is_floating_point() or v.dtype
                                                       == own.dtype):
                raise OcdlError(f"saved {what} is not a tensor of numbers")
            if tuple(v.shape) != tuple(own.shape):
                raise OcdlError(f"saved {what} has shape {list(v.shape)}, the model expects "
                                f"{list(own.shape)}")
        with torch.no_grad():
            for _, v, own in pairs:
                own.copy_(v)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "System":
        """Move controls and buffers in place; returns self."""
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        for k, v in list(self.theta.items()):
            self.theta[k] = v.detach().to(device=device, dtype=dtype).requires_grad_(True)
        for st in self.all_stages():
            for k, v in st.buffers.items():
                st.buffers[k] = v.to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        return self

    def __repr__(self) -> str:
        return (f"System({self.spec.name!r}, T={self.T}, params={self.num_params()}, "
                f"device={self.device}, dtype={self.dtype})")
