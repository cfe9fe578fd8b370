"""E-MSA as a ``torch.optim.Optimizer`` (Li, Chen, Tai & E, JMLR 2018; Li & Hao, ICML 2018;
DESIGN.md §1), built from ocdl's solver parts.

After ``loss.backward()``, with M = −∇J = −``.grad`` (:mod:`ocdl.optim.base`):

* **finite sets** (binary, ternary, any ``ocdl.Levels``): the running average
  M̄ ← α M̄ + (1−α) M (:mod:`ocdl.solvers.running_average`; M̄ starts U(±``mbar_init``), drawn
  with ``seed`` in the order of the groups' parameters), then every parameter at once
  θ ← argmax_θ M̄θ − λ|θ| − ρ_k(θ − θ_ij)², ρ_k = ρ·max{|M̄_ij| : sign(M̄_ij) ≠ θ_ij} per
  parameter — the closed forms of :class:`ocdl.solvers.hamiltonian_argmax.FiniteSetArgmax`
  (binary: θ ← sign(M̄) where |M̄| > ρ_k; ternary: +1 if M̄ > ρ_k(1−2θ) + λ, −1 if
  M̄ < −ρ_k(1+2θ) − λ, else 0), with λ the group's ``l1`` (the sparsity cost λ‖θ‖₁, not in
  the loss), optionally times a multiplier tuned to a non-zero target
  (:mod:`ocdl.solvers.sparsity_target`: ``nonzero_target`` …) and with ``keep_units``;
* **real and box sets**, as the ``emsa`` solver's ``continuous`` setting (``auto``: ``adam``
  when the optimizer has finite-set parameters, else ``augmented``):

  - ``adam``: one Adam step on −H with the group's ``lr`` (the paper's rule for BatchNorm's γ
    and β);
  - ``augmented`` (needs ``model=``): E-MSA's inner maximisation of the augmented Hamiltonian
    H_t − ρ/2‖x_{t+1} − f_t(x_t, θ)‖² − ρ/2‖p_t − ∇_x H_t(θ)‖² at the fixed x, p of θ^k
    (:mod:`ocdl.optim.augmented`) over the real parameters of the model's ``nn.Linear``,
    ``nn.Conv1d/2d/3d`` and ``nn.BatchNorm1d/2d/3d`` layers, whose x_t, x_{t+1} and
    p_{t+1} = −∂J/∂x_{t+1} forward and tensor hooks record during the user's own forward and
    backward passes (:mod:`ocdl.optim.layer_taps`): ``inner_steps`` steps of ``inner`` (``adam``
    with the group's ``lr``, ``betas``, ``eps`` — the first one ascends M − λ sign θ, since at
    θ^k both feasibility terms and their gradients vanish — or ``lbfgs``), with the absolute
    ``rho_real`` (default ``rho``). Other real parameters take the one Adam step (the first
    inner step). Without ``model``, ``auto`` is ``adam``: the first inner step only.

  The adaptive ρ of the solver (``adaptive_rho``) is not offered: it accepts or rejects a step by
  the actual decrease J(θ^k) − J(φ) on the same batch, a second forward pass (with the same
  dropout draws, BatchNorm's running statistics untouched) that only the user's loop can run.

ρ is relative on finite sets (default: 0.5 when every finite-set parameter is binary when the
optimizer is built, else 0.25, the paper's values). With ``alpha_batch_size`` = B₀, pass the batch's size S as
``step(samples=S)``: the step averages with α^(S/B₀) (the ``emsa-ternary`` preset's B₀ = 100).
Call :meth:`EMSA.end_epoch` after every epoch for the paper's schedule 1 − α ← ``alpha_decay``·(1 − α)
(or ``alpha_end``: 1 − α = (1 − α₀)·alpha_end^π with ``progress`` π), and the target's anneal.

Equivalence: with the same θ, M̄ draw, batches and settings, N steps of this optimizer on an
``nn.Module`` give bit for bit the weights of N steps of ``make_solver("emsa-ternary")`` on the
compiled System of the same network, and with ``model=`` those of ``make_solver("emsa")`` with
``continuous: augmented`` (tests/optim/test_equivalence.py, tests/optim/test_augmented.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError, short
from ..solvers.first_order import ascent_direction, project_
from ..solvers.hamiltonian_argmax import FiniteSetArgmax
from ..solvers.real_controls import RealControls
from ..solvers.rho_control import RhoControl
from ..solvers.running_average import RunningAverage
from ..solvers.sparsity_target import SparsityTarget
from ..solvers.settings import Require
from .augmented import INNER, augmented_sum, maximise, stages_of
from .base import REAL_DEFAULTS, ControlOptimizer
from .layer_taps import LayerTaps, is_layer, layer_theta


class EMSA(ControlOptimizer):
    """E-MSA on a module's parameters (see the module docstring for the rule and settings)."""

    supports = ("real", "box", "binary", "ternary", "levels")
    step_keywords = ("samples",)
    aliases = {"average.alpha": "alpha", "average.decay": "alpha_decay",
               "average.end": "alpha_end", "average.batch_size": "alpha_batch_size",
               "average.init": "mbar_init", "error_control.rho": "rho",
               "sparsity.target": "nonzero_target", "sparsity.rate": "nonzero_rate",
               "sparsity.start": "nonzero_start", "sparsity.end": "nonzero_end",
               "sparsity.floor": "nonzero_floor", "error_control.rho_real": "rho_real"}

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 l1: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, rho: float | None = None, alpha: float = 0.999,
                 alpha_decay: float = 0.95, alpha_end: float | None = None,
                 alpha_batch_size: int | None = None, mbar_init: float = 1e-6,
                 keep_units: bool = False, nonzero_target: float | None = None,
                 nonzero_rate: float = 0.01, nonzero_start: float = 0.0,
                 nonzero_end: float | None = None, nonzero_floor: float | None = None,
                 seed: int = 0, put_in: str = "quantize", model: torch.nn.Module | None = None,
                 continuous: str = "auto", inner: str = "adam", inner_steps: int = 5,
                 rho_real: float | None = None):
        average = {"alpha": alpha, "decay": alpha_decay, "end": alpha_end,
                   "batch_size": alpha_batch_size, "init": mbar_init}
        sparsity = {"target": nonzero_target, "rate": nonzero_rate, "start": nonzero_start,
                    "end": nonzero_end, "floor": nonzero_floor}
        self.require("average", average, RunningAverage)
        self.require("sparsity", sparsity, SparsityTarget)
        self._keep_units = bool(keep_units)
        self.taps: LayerTaps | None = None
        self._model: torch.nn.Module | None = None
        super().__init__(params, {**REAL_DEFAULTS, "lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "control": control, "l1": l1},
                         put_in=put_in, seed=seed)
        disc = self._view.names(True)
        if rho is None:
            binary_only = all(self._view.control[n].cset.kind == "binary" for n in disc)
            rho = 0.5 if binary_only else 0.25
        self.require("error_control", {**RhoControl.DEFAULTS, "rho": rho, "rho_real": rho_real},
                     RhoControl)
        self.rho = float(rho)
        self._setup_continuous(model, continuous, inner, inner_steps,
                               self.rho if rho_real is None else float(rho_real))
        self.average = RunningAverage(average, self.title(), "alpha_end")
        self.sparsity = SparsityTarget(sparsity, Require(self.title(), "sparsity", sparsity,
                                                         lambda p: self.aliases.get(p, p)))
        self.ocdl_state.update(alpha=float(alpha))
        self._setup_discrete(fresh=True)

    def _setup_discrete(self, fresh: bool) -> None:
        """The argmax over every finite-set parameter (binary, ternary, other levels grouped),
        the sparsity target over them, the state's ρ and, for new parameters, M̄'s draw."""
        view = self._view
        disc = view.names(True)
        self._disc = disc
        self._argmax = FiniteSetArgmax(view, disc, keep_units=self._keep_units) if disc else None
        if self._keep_units and not (self._argmax and any(self._argmax.keep_units)):
            raise SolverError(f"{self.title()}: keep_units keeps a non-zero entry in every output "
                              "unit of a ternary weight of two or more dimensions, and this "
                              "optimizer has none; drop keep_units")
        rho = RhoControl({**RhoControl.DEFAULTS, "rho": self.rho}).init_state(view)["rho"]
        if not isinstance(self.ocdl_state.get("rho"), torch.Tensor):
            self.ocdl_state["rho"] = rho
        new = [n for n in disc if "mbar" not in self.state[view.theta[n]]]
        if new:
            mbar = self.average.init_mbar(view, new, self._seed)
            for n in new:
                self.state[view.theta[n]]["mbar"] = mbar[n]
        self.sparsity.attach(view, self._argmax.order if self._argmax else [],
                             self._argmax.keys if self._argmax else {})
        if fresh:
            self.sparsity.init_state(self.ocdl_state, view)
        elif self.sparsity.control:
            self.sparsity.control.fill_state(self.ocdl_state, view)

    def _setup_continuous(self, model: torch.nn.Module | None, continuous: str, inner: str,
                          steps: int, rho_real: float) -> None:
        """The real parameters' rule (``continuous``) and, for ``augmented``, the layer taps on
        ``model``'s layers that own a real parameter of this optimizer."""
        t = self.title()
        if continuous not in RealControls.CHOICES["update"]:
            raise SolverError(f"{t}: continuous must be one of auto, adam, augmented, got "
                              f"{short(continuous)}")
        if inner not in INNER:
            raise SolverError(f"{t}: inner must be one of {', '.join(INNER)}, got {short(inner)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise SolverError(f"{t}: inner_steps must be an integer ≥ 1, got {short(steps)}")
        if model is not None and not isinstance(model, torch.nn.Module):
            raise SolverError(f"{t}: model must be the torch.nn.Module whose layers the "
                              f"parameters belong to, got {short(model)}")
        mode = RealControls.mode(continuous, bool(self._view.names(True)))
        if mode == "augmented" and model is None:
            if continuous == "augmented":
                raise SolverError(f"{t}: continuous='augmented' re-evaluates each layer on its "
                                  "recorded input; pass the model: EMSA(groups, model=net)")
            mode = "adam"  # auto without a model: the first inner step only
        self._mode, self._inner, self._inner_steps = mode, inner, steps
        self.ocdl_state["rho_real"] = torch.tensor(rho_real, device=self._view.device,
                                                   dtype=self._view.dtype)
        self._model = model if mode == "augmented" else None
        self._tap()

    def _tap(self) -> None:
        """(Re)place the layer taps on the model's layers that own a real parameter."""
        if self._model is None:
            return
        if self.taps is not None:
            self.taps.remove()
        real = {id(self._view.theta[n]) for n in self._view.names(False)}
        self.taps = LayerTaps([(name, m) for name, m in self._model.named_modules()
                               if is_layer(m) and any(id(p) in real
                                                      for p in layer_theta(m).values())])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's ``zero_grad``, and the layer taps' recorded calls forgotten."""
        super().zero_grad(set_to_none)
        if self.taps is not None:
            self.taps.clear()

    def _real_step(self, items, M) -> dict[str, torch.Tensor] | None:
        """``adam``: one Adam step on −H. ``augmented``: the inner maximisation of the augmented
        Hamiltonian over the real parameters of the layers a backward pass reached since the
        last step (the others: one Adam step), then the recorded calls are forgotten."""
        if self.taps is None:
            return super()._real_step(items, M)
        mine = {id(p) for _, p, _ in items}
        ready = [tap for tap in self.taps.ready()  # the stages that own a parameter to move
                 if any(id(p) in mine for p in layer_theta(tap.module).values())]
        tapped = {id(p) for tap in ready for p in layer_theta(tap.module).values()}
        aug = [it for it in items if id(it[1]) in tapped]
        rest = [it for it in items if id(it[1]) not in tapped]
        for n, _, g in aug:
            if g["weight_decay"]:
                raise SolverError(f"{self.title()}: parameter {n} has weight_decay "
                                  f"{g['weight_decay']}, which the augmented Hamiltonian does "
                                  "not contain; put an l2 cost in the loss, or pass "
                                  "continuous='adam'")
        view, rho = self._view, self.ocdl_state["rho_real"]
        stages = stages_of(ready)  # x_{t+1}, p_t at θ^k, before anything moves
        l1 = {id(view.theta[c.name]): c.l1 for c in view.controls if c.l1}
        if rest:
            super()._real_step(rest, M)
        g = ascent_direction(view, M, [n for n, _, _ in aug]) if aug else {}
        maximise(stages, aug, lambda its: self._adam_ascent(its, g), self._adam_ascent,
                 lambda names: project_(view, names), method=self._inner,
                 steps=self._inner_steps, rho=rho, l1=l1)
        self.taps.clear()
        if not stages:
            return None
        _, parts = augmented_sum(stages, rho, l1, create_graph=False)
        return {"state_error": parts["state_error"].detach(),
                "costate_error": parts["costate_error"].detach(), "rho_real": rho}

    def _groups_changed(self) -> None:
        self._setup_discrete(fresh=False)
        if self.taps is not None:
            self._tap()

    def _loaded(self) -> None:
        self._setup_discrete(fresh=False)

    def _discrete_step(self, items, M, samples: int | None = None) -> dict[str, torch.Tensor]:
        """M̄ ← lerp(M̄, M, 1 − α^per), then the closed-form argmax of every finite set."""
        b0 = self.average.b0
        if b0 is not None and samples is None:
            raise SolverError(f"{self.title()}: alpha_batch_size={b0} makes α a rate per {b0} "
                              "samples; pass the batch's size as opt.step(samples=len(x)), or "
                              "drop alpha_batch_size")
        per = 1.0 if b0 is None else samples / b0
        state, view = self.ocdl_state, self._view
        mbar = {n: self.state[view.theta[n]]["mbar"] for n in self._disc}
        ctl = self.sparsity.control
        metrics, dH = self._argmax.step(view, M, mbar, RunningAverage.weight(state, per),
                                        state["rho"], ctl.lam_scale(state) if ctl else None)
        if ctl:
            metrics.update(self.sparsity.update(state, metrics, per))
        metrics["dH"] = dH
        metrics["rho"] = state["rho"]
        return metrics

    def end_epoch(self, progress: float | None = None) -> None:
        """After an epoch that ends the fraction ``progress`` π of the run: the sparsity target's
        switch and anneal, then 1 − α ← d·(1 − α) (or (1 − α₀)·r^π with ``alpha_end`` = r)."""
        self.sparsity.after_epoch(self.ocdl_state, self._view, progress)
        self.average.after_epoch(self.ocdl_state, progress)
