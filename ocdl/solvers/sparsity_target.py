"""The sparsity controller: a non-zero target for sparse finite-set controls, the l1 weights λ
as a multiplier tuned by dual ascent (block ``sparsity``: ``target``, ``rate``, ``start``,
``end``, ``floor``; flat ``nonzero_target``, ``nonzero_rate``, …).

The ternary closed form (DESIGN.md §1) zeroes an entry unless |M̄_ij| clears ρ_k(1∓2θ_ij) + λ.
With a fixed λ the fraction of non-zero weights therefore follows the scale of M̄ = Σ_s ∇_θ H,
which shrinks as the loss falls: a net that keeps 2.5 % of its weights at first keeps 1.25 % by
the end (docs/RESULTS.md, CIFAR-10). Read as a constrained problem, min J s.t. ν(θ) ≤ B with ν
the non-zero fraction, λ is the constraint's multiplier, and it can be found by dual ascent
instead of by hand.

:class:`NonzeroTarget` scales every penalised control's λ by one common factor s (the model's
λ's keep their ratios) and moves s after each step by multiplicative dual ascent:

    ν   = Σ_{i∈P} nnz(θ_i) / Σ_{i∈P} numel(θ_i)   over P, the finite-set controls with λ_i > 0
    log s ← clip(log s + η · log(max(ν, ν_min) / B), log s_min, log s_max)
    λ_i^eff = s · λ_i                               (used by the next step's closed forms)

so s grows while more than the target B is non-zero, shrinks while less is, and holds where ν
meets B. The gain η (``rate``) is per iteration: at ν = 2B, λ doubles in
ln 2 / (η ln 2) = 1/η iterations (per B₀ samples under E-MSA's running-average ``batch_size`` =
B₀: a step on S samples then moves log s by (S/B₀)·η·log(ν/B)). s starts at 1 (the model's λ) and
stays in [:data:`SCALE_MIN`, :data:`SCALE_MAX`]. Everything stays on the device: no host sync.

When to start. Early in training M̄ is large, so holding B from the first step drives s up by
orders of magnitude (×440 within 550 steps on a half-width CIFAR-10 net, ν from 13 % to B = 2 %):
the net is pruned to B before it has learned, and at such a λ hardly a weight flips afterwards
(docs/RESULTS.md). ``start`` = π₀ keeps s = 1 until the fraction π₀ of the run
is done: the model's λ prunes the learning net by itself first (the CIFAR-10 model's λ brings it
to about 2.5 % within the first 10 % of a 10-minute run), and the ascent then only has to hold B
where a fixed λ would let ν drift (to 1.25 % there). The model's λ should bring ν near B by π₀:
from far above (22 % against B = 1.95 % on the half-width net) the switch prunes abruptly and the
net loses much of what it had learned.

Annealing the target. With ``end`` = π₁ as well, the ascent steers to a target B_π that
moves from ν₀, the non-zero fraction of θ where the ascent begins (π₀), down (or up) to B by the
cubic schedule of gradual pruning (Zhu & Gupta, 2017, "To prune, or not to prune";
:func:`ocdl.solvers.schedules.cubic_weight`):

    B_π = B + (ν₀ − B)·(1 − τ)³,   τ = clip((π − π₀) / (π₁ − π₀), 0, 1)

set after every epoch (π is known at epoch ends), B from π₁ on. At π₀ the target is where the net
is, so λ does not jump; the target falls fastest first, while the net still has many weights to
spare, and slowly as it nears B. log B_π lives in the state (:attr:`TARGET_KEY`, updated in place,
so a captured update reads the new target without a recapture), ν₀ too (:attr:`FROM_KEY`).

A floor per layer. One common s prunes each layer by its own |M̄|, and a layer whose |M̄| is
small can be pruned to almost nothing while the total is still above B; the layers after it
then see a starved signal, their gradients grow, and the ascent chases them (a half-width
CIFAR-10 net collapsed so, docs/RESULTS.md). With ``floor`` = f each penalised layer i
gets a factor c_i ∈ [s_min, 1] of its own, the multiplier of the constraint ν_i ≥ f, by the same
ascent:

    log c_i ← clip(log c_i + η · log(max(ν_i, ν_min) / f), log s_min, 0)
    λ_i^eff = s · c_i · λ_i

so c_i stays 1 (λ_i^eff = s·λ_i) while layer i keeps f or more non-zero, falls while it keeps
less, and comes back to 1 once it has recovered (:attr:`FLOOR_KEY`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import SolverError
from ..system import System
from .schedules import cubic_weight, progress_of
from .settings import Part, Require

SCALE_MIN, SCALE_MAX = 1e-4, 1e4
"""The bounds of s: λ^eff stays within four decades of the model's λ either way."""
NU_MIN = 1e-9
"""Floor of ν inside the logarithm (with every penalised entry at 0, ν = 0 would give log 0)."""


def penalised(system: System, names: Sequence[str]) -> list[str]:
    """The controls among ``names`` whose set holds 0 and whose l1 weight λ is positive: those
    a scaled λ can make sparser or denser."""
    return [n for n in names
            if system.control[n].l1 > 0 and 0.0 in system.control[n].cset.values]


class NonzeroTarget:
    """Multiplicative dual ascent of the l1 multiplier towards a non-zero fraction ``target``
    over the penalised controls of ``names`` (see the module docstring). The log-scale lives in
    the solver's state (key :attr:`KEY`, a 0-d tensor updated in place, so a CUDA graph that
    captures :meth:`update` replays it and a checkpoint carries it)."""

    KEY = "log_lambda_scale"
    TARGET_KEY = "log_nonzero_target"
    """log B_π, the target the ascent steers to now (0-d tensor in the state)."""
    FROM_KEY = "nonzero_from"
    """ν₀, the non-zero fraction of θ where an annealed target began (0-d tensor in the state)."""
    FLOOR_KEY = "log_layer_scale"
    """log c_i, the per-layer factors of ``nonzero_floor`` (1-d tensor over :attr:`names`)."""

    def __init__(self, system: System, names: Sequence[str], keys: Mapping[str, str],
                 target: float, rate: float, floor: float | None = None):
        self.names = penalised(system, names)
        if not self.names:
            raise SolverError(
                "nonzero_target needs a finite-set control with 0 among its values (ternary, or "
                "levels with 0) and a positive l1 cost; this model has none. Add one to the "
                "model, e.g. cost: {running: [{type: l1, weight: 1.0e-7}]}, or drop "
                "nonzero_target")
        self.keys = [f"nonzero/{keys[n]}" for n in self.names]
        numel = [float(system.control[n].numel) for n in self.names]
        self.weights = torch.tensor(numel, device=system.device, dtype=system.dtype) / sum(numel)
        self.target = target
        self.log_target = math.log(target)
        self.rate = rate
        self.floor = floor
        self.order = list(names)  # the λ-scale vector's order (the argmax's order: names as given)
        self.pos = torch.tensor([self.order.index(n) for n in self.names], device=system.device)

    @staticmethod
    def init_state(system: System) -> torch.Tensor:
        """log s = 0: start from the model's λ."""
        return torch.zeros((), device=system.device, dtype=system.dtype)

    def floor_state(self, system: System) -> torch.Tensor:
        """log c_i = 0 for every penalised layer: no layer held up yet."""
        return torch.zeros(len(self.names), device=system.device, dtype=system.dtype)

    def fill_state(self, state: dict, system: System) -> None:
        """Add the keys this target keeps in a solver state where they are missing (a new state,
        or one saved without the target or its floor): log s = 0, log B_π = log B and, with
        ``nonzero_floor``, log c_i = 0. Nothing is allocated when they are all there."""
        if self.KEY not in state:
            state[self.KEY] = self.init_state(system)
        if self.TARGET_KEY not in state:
            state[self.TARGET_KEY] = self.target_state(system)
        if self.floor is not None and self.FLOOR_KEY not in state:
            state[self.FLOOR_KEY] = self.floor_state(system)

    def lam_scale(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The factor of every l1 weight for the next step: s (0-d), or with ``nonzero_floor``
        s·c_i per control of :attr:`order` (1-d; 1·s for controls without an l1 cost)."""
        s = state[self.KEY].exp()
        if self.floor is None:
            return s
        c = torch.ones(len(self.order), device=s.device, dtype=s.dtype)
        return c.index_copy(0, self.pos, state[self.FLOOR_KEY].exp()) * s

    def target_state(self, system: System) -> torch.Tensor:
        """log B_π = log B: the fixed target, until :meth:`anneal_` moves it."""
        return torch.full((), self.log_target, device=system.device, dtype=system.dtype)

    def per_layer(self, metrics: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """ν_i from the step's ``nonzero/<stage>`` metrics (1-d tensor over :attr:`names`)."""
        return torch.stack([metrics[k] for k in self.keys])

    def fraction(self, nu_i: torch.Tensor) -> torch.Tensor:
        """ν = Σ_i w_i ν_i from the per-layer fractions ν_i of :meth:`per_layer` (0-d tensor)."""
        return nu_i.mul(self.weights).sum()

    def fraction_of(self, system: System) -> torch.Tensor:
        """ν counted from the controls θ themselves (0-d tensor, no host sync)."""
        with torch.no_grad():
            return torch.stack([system.theta[n].ne(0).to(self.weights.dtype).mean()
                                for n in self.names]).mul(self.weights).sum()

    def anneal_(self, state: dict, system: System, tau: float) -> None:
        """log B_π ← log(B + (ν₀ − B)(1 − τ)³) in ``state`` in place, τ ∈ [0, 1] the anneal's
        progress; ν₀ is counted from θ the first time (and kept in the state)."""
        if self.FROM_KEY not in state:
            state[self.FROM_KEY] = self.fraction_of(system)
        self.fill_state(state, system)
        w = cubic_weight(tau)
        with torch.no_grad():
            state[self.TARGET_KEY].copy_(
                (self.target + (state[self.FROM_KEY] - self.target) * w).clamp_min(NU_MIN).log())

    def update(self, log_scale: torch.Tensor, metrics: Mapping[str, torch.Tensor],
               per: float = 1.0, log_target: torch.Tensor | None = None,
               log_layer: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """log s ← clip(log s + per·η (log ν − log B_π)) in place (``per``: the step's share of
        the rate, S/B₀ under the running average's ``batch_size``; ``log_target``: log B_π, the fixed
        log B if None), and with ``nonzero_floor`` the per-layer log c_i (``log_layer``) by
        their ascent; returns the metrics ``nonzero/target_set`` (ν), ``nonzero/target``
        (B_π), ``lambda_scale`` (the new s) and with the floor ``lambda_floor/<stage>`` (c_i)."""
        nu_i = self.per_layer(metrics)
        nu = self.fraction(nu_i)
        goal = self.log_target if log_target is None else log_target
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            log_scale.add_(per * self.rate * (nu.clamp_min(NU_MIN).log() - goal))
            log_scale.clamp_(math.log(SCALE_MIN), math.log(SCALE_MAX))
            if self.floor is not None and log_layer is not None:
                log_layer.add_(per * self.rate
                               * (nu_i.clamp_min(NU_MIN).log() - math.log(self.floor)))
                log_layer.clamp_(math.log(SCALE_MIN), 0.0)
                c = log_layer.exp()
                out = {f"lambda_floor/{k.split('/', 1)[1]}": c[i]
                       for i, k in enumerate(self.keys)}
        target = (torch.full_like(nu, self.target) if log_target is None
                  else log_target.exp())
        return {"nonzero/target_set": nu, "nonzero/target": target,
                "lambda_scale": log_scale.exp(), **out}


def _fraction(v: Any, lo: float, hi: float, lo_open: bool = True) -> bool:
    """v is a number (not a bool) in (lo, hi] — or [lo, hi) with ``lo_open`` False."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return lo < v <= hi if lo_open else lo <= v < hi


class SparsityTarget(Part):
    """Settings ``target`` (B, null: off), ``rate`` (η), ``start`` (π₀), ``end`` (π₁, null: a
    fixed target) and ``floor`` (f, null: off): the part that runs :class:`NonzeroTarget` for a
    solver — its state at ``init``, its switch and anneal at the end of every epoch."""

    DEFAULTS = {"target": None, "rate": 0.01, "start": 0.0, "end": None, "floor": None}
    DOCS = {"target": "if set (e.g. 0.02), λ is tuned so that this fraction of the "
                      "l1-penalised weights stays non-zero",
            "rate": "gain of that tuning: log(scale) += rate·log(non-zero fraction / target)",
            "start": "fraction of the run before which λ stays the model's",
            "end": "if set (e.g. 0.8), the target is annealed from the fraction at start to "
                   "target by this fraction of the run",
            "floor": "if set (e.g. 0.005), no penalised layer is pruned below this non-zero "
                     "fraction"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        n = require.name
        target, start, end, floor = s["target"], s["start"], s["end"], s["floor"]
        require(target is None or _fraction(target, 0, 1) and target < 1, "target",
                "must be a fraction in (0, 1), e.g. 0.02, or null (off)")
        require(_fraction(s["rate"], 0, 1), "rate", "must be a number in (0, 1], e.g. 0.01")
        require(_fraction(start, 0, 1, lo_open=False), "start",
                "must be a fraction of the run in [0, 1), e.g. 0.5 (0: from the first step)")
        require(not start or target is not None, "start",
                f"delays {n('target')}, which is not set; set {n('target')} too, or drop "
                f"{n('start')}")
        require(end is None or (_fraction(end, 0, 1) and isinstance(start, (int, float))
                                and start < end), "end",
                f"must be a fraction of the run in ({n('start')}, 1], e.g. 0.8 (the annealed "
                f"target reaches {n('target')} there), or null (no anneal)")
        require(floor is None or (_fraction(floor, 0, math.inf)
                                  and (target is None or floor < target)), "floor",
                f"must be a fraction in (0, {n('target')}), e.g. 0.005 (no layer pruned below "
                "it), or null (off)")
        require(floor is None or target is not None, "floor",
                f"bounds {n('target')}'s pruning per layer, and {n('target')} is not set; set "
                f"{n('target')} too, or drop {n('floor')}")
        require(end is None or target is not None, "end",
                f"anneals {n('target')}, which is not set; set {n('target')} too, or drop "
                f"{n('end')}")

    def __init__(self, s: Mapping[str, Any], names: Require):
        self.s, self.names = dict(s), names
        self.on = s["target"] is not None
        self.control: NonzeroTarget | None = None

    def attach(self, system: System, order: Sequence[str], keys: Mapping[str, str]) -> None:
        """Set up :class:`NonzeroTarget` over the finite-set controls ``order`` (the argmax's
        order; ``keys`` their metric suffixes) when a target is set."""
        if not self.on:
            self.control = None
            return
        if not order:
            raise SolverError(f"{self.names.name('target')} applies to finite-set controls "
                              "(ternary, levels with 0); this model's controls are all real; "
                              f"drop {self.names.name('target')}")
        self.control = NonzeroTarget(system, order, keys, self.s["target"], self.s["rate"],
                                     self.s["floor"])

    def init_state(self, state: dict[str, Any], system: System) -> None:
        """The target's keys in a new state; the ascent's switch ``nonzero_gain`` (0 until
        ``start``); an anneal from the first step starts from the initial θ's fraction."""
        ctl = self.control
        if ctl is None:
            return
        ctl.fill_state(state, system)
        state["nonzero_gain"] = 0.0 if self.s["start"] else 1.0
        if self.s["end"] is not None and not self.s["start"]:
            ctl.anneal_(state, system, 0.0)

    def after_epoch(self, state: dict[str, Any], system: System, progress: float | None
                    ) -> None:
        """With ``start`` = π₀ the λ scale's dual ascent switched on once π ≥ π₀; with
        ``end`` = π₁ the annealed target B_π set for the next epoch."""
        start, end, n = self.s["start"], self.s["end"], self.names
        if start and self.on:
            pi = progress_of(progress, f"solver '{n.solver}' setting '{n.name('start')}'",
                             f"set {n.name('start')} to 0 (the target from the first step)")
            state["nonzero_gain"] = 1.0 if pi >= start else 0.0
        if end is not None and self.on:
            pi = progress_of(progress, f"solver '{n.solver}' setting '{n.name('end')}'",
                             f"drop {n.name('end')} (a fixed target, no anneal)")
            if pi >= start:
                self.control.anneal_(state, system, (pi - start) / (end - start))

    def update(self, state: dict[str, Any], metrics: Mapping[str, torch.Tensor], per: float
               ) -> dict[str, torch.Tensor]:
        """After a step: the next step's λ scale (held at the model's until ``start``)."""
        ctl = self.control
        return ctl.update(state[ctl.KEY], metrics, per * state.get("nonzero_gain", 1.0),
                          state[ctl.TARGET_KEY], state.get(ctl.FLOOR_KEY))
