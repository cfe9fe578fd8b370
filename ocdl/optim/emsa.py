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
* **real and box sets**: one Adam step on −H with the group's ``lr`` (the paper's rule for
  BatchNorm's γ and β). This is also E-MSA's continuous rule, the maximisation of the augmented
  Hamiltonian H_t − ρ/2‖x_{t+1} − f_t(x_t, θ)‖² − ρ/2‖p_t − ∇_x H_t(θ)‖² at fixed x, p, taken
  for one inner Adam step: at θ^k the two feasibility terms and their gradients vanish, so the
  first inner step ascends M − λ sign θ exactly. Further inner steps would re-evaluate f_t on
  the stored states x_t and ∇_x H_t against p_t, which an optimizer that sees only θ and ``.grad``
  does not have; ocdl's own ``emsa`` solver on a compiled System takes them
  (``continuous: augmented``). Likewise the adaptive ρ (it compares J before and after a step
  with the feasibility errors) is the solver's, not this optimizer's.

ρ is relative on finite sets (default: 0.5 when every finite-set parameter is binary when the
optimizer is built, else 0.25, the paper's values). With ``alpha_batch_size`` = B₀, pass the batch's size S as
``step(samples=S)``: the step averages with α^(S/B₀) (the ``emsa-ternary`` preset's B₀ = 100).
Call :meth:`EMSA.end_epoch` after every epoch for the paper's schedule 1 − α ← ``alpha_decay``·(1 − α)
(or ``alpha_end``: 1 − α = (1 − α₀)·alpha_end^π with ``progress`` π), and the target's anneal.

Equivalence: with the same θ, M̄ draw, batches and settings, N steps of this optimizer on an
``nn.Module`` give bit for bit the weights of N steps of ``make_solver("emsa-ternary")`` on the
compiled System of the same network (tests/optim/test_equivalence.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError
from ..solvers.hamiltonian_argmax import FiniteSetArgmax
from ..solvers.rho_control import RhoControl
from ..solvers.running_average import RunningAverage
from ..solvers.sparsity_target import SparsityTarget
from ..solvers.settings import Require
from .base import REAL_DEFAULTS, ControlOptimizer


class EMSA(ControlOptimizer):
    """E-MSA on a module's parameters (see the module docstring for the rule and settings)."""

    supports = ("real", "box", "binary", "ternary", "levels")
    step_keywords = ("samples",)
    aliases = {"average.alpha": "alpha", "average.decay": "alpha_decay",
               "average.end": "alpha_end", "average.batch_size": "alpha_batch_size",
               "average.init": "mbar_init", "error_control.rho": "rho",
               "sparsity.target": "nonzero_target", "sparsity.rate": "nonzero_rate",
               "sparsity.start": "nonzero_start", "sparsity.end": "nonzero_end",
               "sparsity.floor": "nonzero_floor"}

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 l1: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, rho: float | None = None, alpha: float = 0.999,
                 alpha_decay: float = 0.95, alpha_end: float | None = None,
                 alpha_batch_size: int | None = None, mbar_init: float = 1e-6,
                 keep_units: bool = False, nonzero_target: float | None = None,
                 nonzero_rate: float = 0.01, nonzero_start: float = 0.0,
                 nonzero_end: float | None = None, nonzero_floor: float | None = None,
                 seed: int = 0, put_in: str = "quantize"):
        average = {"alpha": alpha, "decay": alpha_decay, "end": alpha_end,
                   "batch_size": alpha_batch_size, "init": mbar_init}
        sparsity = {"target": nonzero_target, "rate": nonzero_rate, "start": nonzero_start,
                    "end": nonzero_end, "floor": nonzero_floor}
        self.require("average", average, RunningAverage)
        self.require("sparsity", sparsity, SparsityTarget)
        self._keep_units = bool(keep_units)
        super().__init__(params, {**REAL_DEFAULTS, "lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "control": control, "l1": l1},
                         put_in=put_in, seed=seed)
        disc = self._view.names(True)
        if rho is None:
            binary_only = all(self._view.control[n].cset.kind == "binary" for n in disc)
            rho = 0.5 if binary_only else 0.25
        self.require("error_control", {**RhoControl.DEFAULTS, "rho": rho}, RhoControl)
        self.rho = float(rho)
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

    def _groups_changed(self) -> None:
        self._setup_discrete(fresh=False)

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
