"""E-MSA, the extended (error-controlled) method of successive approximations
(Li, Chen, Tai & E, JMLR 2018; Li & Hao, ICML 2018; DESIGN.md §1).

Each iteration maximises, for all stages at once (x, p of the current θ^k fixed),

    Σ_s [ H_t(x_{s,t}, p_{s,t+1}, θ) − ρ/2 ‖x_{s,t+1} − f_t(x_{s,t}, θ)‖² − ρ/2 ‖p_{s,t} − ∇_x H_t(x_{s,t}, p_{s,t+1}, θ)‖² ]

E-MSA is a composition of parts, each a block of settings (flat names, as in run records and
``--set``, in brackets):

* ``error_control`` (:mod:`ocdl.solvers.rho_control`): ρ (``rho``), ρ on real controls
  (``rho_real``) and the adaptive ρ (``adaptive_rho``, ``rho_up``, ``rho_down``, ``rho_min``,
  ``rho_max``, ``accept_ratio``): after each step, on the same batch, the actual decrease of J
  is compared with the error estimate's prediction; a step that falls short is undone and ρ
  raised, a safe one lowers ρ. Costs one more forward pass and one Hamiltonian evaluation.
* ``average`` (:mod:`ocdl.solvers.running_average`): M̄ ← α M̄ + (1−α) M, its schedule and batch
  share (``alpha``, ``alpha_decay``, ``alpha_end``, ``alpha_batch_size``, ``mbar_init``).
* ``argmax`` (:mod:`ocdl.solvers.hamiltonian_argmax`): on finite sets the closed forms of
  M̄θ − λ|θ| − ρ_k(θ−θ_ij)², ρ_k = ρ·max{|M̄_ij| : sign(M̄_ij) ≠ θ_ij} per layer (ρ is relative
  there) and λ the model's l1 cost of the control; the constraint ``keep_units``.
* ``sparsity`` (:mod:`ocdl.solvers.sparsity_target`): λ scaled by a multiplier tuned towards a
  non-zero fraction (``nonzero_target``, ``nonzero_rate``, ``nonzero_start``, ``nonzero_end``,
  ``nonzero_floor``).
* ``real`` (:mod:`ocdl.solvers.real_controls`): real and box controls take one Adam step on −H
  (``continuous: adam``; ``lr``, ``betas``, ``eps``, decoupled ``weight_decay``; the paper's rule
  for BatchNorm's scale and shift) or ``inner_maximisation`` (``inner``, ``inner_steps``,
  ``inner_lr``; :mod:`ocdl.solvers.inner_maximisation`) on the augmented Hamiltonian above with
  the absolute ρ ``rho_real`` (``continuous: augmented``; ``auto``: adam when the network has
  finite sets). The first inner gradient is M − λ sign θ from the reverse pass: the feasibility
  terms have zero gradient at θ^k; the inner Adam moments persist across iterations.
* ``lr_schedule`` (:mod:`ocdl.solvers.schedules`): every learning rate × ``lr_decay`` per epoch,
  or × ``lr_end``^π.
* ``execution`` (:mod:`ocdl.solvers.cuda_graphs`): ``cuda_graph: true`` / ``update`` replays the
  update after the reverse pass (Adam on the real controls, the closed forms, the metrics) as
  one CUDA graph, ``step`` the whole step (a new batch shape, α or learning-rate scale
  recaptures); neither with ``adaptive_rho`` nor ``augmented``; no effect on the CPU. The
  finite-set update never synchronises with the host either way.
* top level: ``sets`` (the set kinds a preset accepts) and ``seed`` (of M̄'s initial draw).

Metrics per step (0-d tensors, no host sync): ``loss``, ``J`` (before the step), ``rho``, ``dH``
(exact Σ M·Δθ − Δ(l1, l2) for finite sets and the linear stages dense/conv/batchnorm, first order
otherwise; exact from H itself under ``adaptive_rho``), ``rho_k/max``, ``rho_k/mean``,
``flips/<stage>``, ``nonzero/<stage>``, ``flips``, ``nonzero``; with ``nonzero_target``
``nonzero/target_set`` (ν), ``nonzero/target`` (B, or B_π while annealed) and
``lambda_scale`` (s), with ``nonzero_floor`` ``lambda_floor/<stage>`` (c_i); with ``augmented`` or
``adaptive_rho`` also ``state_error`` and ``costate_error``; with ``adaptive_rho``
``accepted``, ``dJ`` (actual) and ``dJ_predicted``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...errors import SolverError
from ...system import System
from ..base import Solver, register_solver
from ..cuda_graphs import Execution, addresses
from ..hamiltonian import (augmented_sum, control_stages, feasibility, l1_cost,
                           reference_costates, replay_objective, restore_, snapshot)
from ..hamiltonian_argmax import FINITE_KINDS, ArgmaxConstraint, FiniteSetArgmax
from ..inner_maximisation import InnerMaximisation, maximise
from ..first_order import adam_init, ascent_direction
from ..real_controls import RealControls, adam_ascent_, real_gain, split_controls
from ..rho_control import RhoControl
from ..running_average import RunningAverage
from ..schedules import LrSchedule
from ..sparsity_target import SparsityTarget
from ..workspace import Workspace


@register_solver
class EMSA(Solver):
    """E-MSA: closed forms with a running average for finite sets, Adam or the augmented
    Hamiltonian for real ones, optional adaptive ρ."""

    name = "emsa"
    doc = "extended MSA: maximise H minus ρ-weighted feasibility errors (closed forms on finite sets)"
    supports = ("real", "box") + FINITE_KINDS
    parts = {"error_control": RhoControl, "average": RunningAverage, "argmax": ArgmaxConstraint,
             "sparsity": SparsityTarget, "real": RealControls,
             "inner_maximisation": InnerMaximisation, "lr_schedule": LrSchedule,
             "execution": Execution}
    top = {"sets": None, "seed": 0}
    aliases = {
        "rho": "error_control.rho", "rho_real": "error_control.rho_real",
        "adaptive_rho": "error_control.adaptive", "rho_up": "error_control.up",
        "rho_down": "error_control.down", "rho_min": "error_control.min",
        "rho_max": "error_control.max", "accept_ratio": "error_control.accept_ratio",
        "alpha": "average.alpha", "alpha_decay": "average.decay", "alpha_end": "average.end",
        "alpha_batch_size": "average.batch_size", "mbar_init": "average.init",
        "keep_units": "argmax.keep_units",
        "nonzero_target": "sparsity.target", "nonzero_rate": "sparsity.rate",
        "nonzero_start": "sparsity.start", "nonzero_end": "sparsity.end",
        "nonzero_floor": "sparsity.floor",
        "continuous": "real.update", "lr": "real.lr", "betas": "real.betas", "eps": "real.eps",
        "weight_decay": "real.weight_decay",
        "inner": "inner_maximisation.method", "inner_steps": "inner_maximisation.steps",
        "inner_lr": "inner_maximisation.lr",
        "lr_decay": "lr_schedule.decay", "lr_end": "lr_schedule.end",
        "cuda_graph": "execution.cuda_graph", "sets": "sets", "seed": "seed"}

    def __init__(self, **hparams: Any):
        super().__init__(**hparams)
        s = self.settings
        self.rho_control = RhoControl(s["error_control"])
        self.average = RunningAverage(s["average"], self.name, self.setting_name("average.end"))
        self.sparsity = SparsityTarget(s["sparsity"], self.require_in("sparsity"))

    def validate(self) -> None:
        super().validate()
        n = self.setting_name
        self.require(self.get("sparsity.target") is None
                     or not self.get("error_control.adaptive"), n("sparsity.target"),
                     f"cannot be combined with {n('error_control.adaptive')}, which compares J "
                     f"(with its l1 cost) before and after each step at a fixed λ while "
                     f"{n('sparsity.target')} moves λ; set one of them")

    # ------------------------------------------------------------------ set-up
    def _prepare(self, system: System) -> None:
        if getattr(self, "_for", None) is system:
            return
        disc, real = split_controls(system)
        self._disc, self._real = disc, real
        keep = self.get("argmax.keep_units")
        self._argmax = FiniteSetArgmax(system, disc, keep_units=keep) if disc else None
        if keep and not (self._argmax and any(self._argmax.keep_units)):
            raise SolverError("keep_units keeps a non-zero entry in every output unit of a "
                              "ternary dense or conv2d weight, and this model has none; drop "
                              "keep_units")
        self.sparsity.attach(system, self._argmax.order if self._argmax else [],
                             self._argmax.keys if self._argmax else {})
        self._mode = RealControls.mode(self.get("real.update"), bool(disc))
        self._ts_real = control_stages(system, real)
        self._ts_all = control_stages(system, disc + real)
        self._work = Workspace()
        self.execution = Execution(self.settings["execution"],
                                   name=self.setting_name("execution.cuda_graph"))
        self._for = system

    def amp_unsafe(self, system: System) -> str | None:
        if self.rho_control.adaptive:
            return ("adaptive_rho compares J before and after each step and weighs the state and "
                    "costate feasibility errors, differences that bfloat16 loses")
        disc, real = split_controls(system)
        if real and RealControls.mode(self.get("real.update"), bool(disc)) == "augmented":
            return ("the augmented Hamiltonian's inner steps on the real controls weigh "
                    "‖x_{t+1} − f_t(x_t, θ)‖², a difference of near-equal states that bfloat16 "
                    "loses (continuous: adam takes M only)")
        return None

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        self._prepare(system)
        real_params = {n: system.theta[n] for n in self._real}
        state = {"mbar": self.average.init_mbar(system, self._disc, self.hp["seed"]),
                 "alpha": self.get("average.alpha"), **self.rho_control.init_state(system),
                 "adam": adam_init(real_params), "inner_adam": adam_init(real_params),
                 "iteration": 0}
        self.sparsity.init_state(state, system)
        return state

    def end_epoch(self, system: System, state: dict[str, Any], epoch: int,
                  progress: float | None = None) -> dict[str, Any]:
        """The learning rates' schedule (:meth:`Solver.end_epoch`), the sparsity target's switch
        and anneal, then the running average's 1 − α."""
        state = super().end_epoch(system, state, epoch, progress)
        if self.sparsity.on:
            self._prepare(system)
        self.sparsity.after_epoch(state, system, progress)
        self.average.after_epoch(state, progress)
        return state

    # ------------------------------------------------------------------ step
    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        self._prepare(system)
        if self.sparsity.control:  # a state saved without the target (or its anneal or floor)
            self.sparsity.control.fill_state(state, system)
        adaptive = self.rho_control.adaptive
        augmented = self._mode == "augmented" and bool(self._real)
        per = self.average.share(system.batch_samples(x))
        if not (adaptive or augmented):
            metrics = self.execution.run(
                system, state, x, y,
                lambda xb, yb, graph: self._plain_step(system, state, xb, yb, per, graph),
                lambda: self._graph_scalars(state, per))
            state["iteration"] = state.get("iteration", 0) + 1
            return state, metrics

        rho = state["rho"]
        states = system.forward(x)
        c = system.costates(states, y, need_p=True)
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J, "rho": rho}
        p_ref = reference_costates(system, states, c, self._ts_all if adaptive else self._ts_real)
        rho_aug = state.get("rho_real", rho) if augmented else rho
        if augmented:
            metrics["rho_real"] = rho_aug
        if adaptive:
            saved = snapshot(system, self._disc + self._real)
            J_old = c.J + l1_cost(system)
        objective = (lambda: augmented_sum(system, states, c, self._ts_real, rho_aug, p_ref)[0]) \
            if augmented else None
        metrics.update(self._update(system, state, c.M, objective, per=per))

        if augmented and not adaptive:
            _, parts = augmented_sum(system, states, c, self._ts_real, rho_aug, p_ref,
                                     create_graph=False)
            errors = [parts["state_error"].detach(), parts["costate_error"].detach()]
            system.sum_over_ranks(errors, "the feasibility errors")
            metrics["state_error"], metrics["costate_error"] = errors

        if adaptive:
            fe = feasibility(system, states, c, self._ts_all, saved, p_ref)
            actual = J_old - replay_objective(system, states, x, y)
            predicted = RhoControl.predicted(fe["dH"], rho_aug, fe["state_error"],
                                             fe["costate_error"])
            accept = self.rho_control.accept(actual, predicted)
            restore_(system, saved, keep=accept)
            self.rho_control.adapt_(state, accept, actual, predicted,
                                    rho_aug if augmented else None)
            metrics.update({"dH": fe["dH"], "state_error": fe["state_error"],
                            "costate_error": fe["costate_error"],
                            "accepted": accept.to(system.dtype), "dJ": actual,
                            "dJ_predicted": predicted})
        state["iteration"] = state.get("iteration", 0) + 1
        return state, metrics

    def _plain_step(self, system: System, state: dict[str, Any], x: torch.Tensor,
                    y: torch.Tensor, per: float, graph_update: bool) -> dict[str, torch.Tensor]:
        """One step without error control or inner maximisation: forward, costates, then
        :meth:`_update` from M (replayed as a CUDA graph if ``graph_update``). Free of host
        synchronisation, so that ``cuda_graph: step`` can capture all of it."""
        states = system.forward(x)
        c = system.costates(states, y, need_p=False)
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J, "rho": state["rho"]}
        if graph_update:
            metrics.update(self.execution.update(
                lambda M: self._update(system, state, M, per=per),
                (self._graph_scalars(state, per), addresses(system.theta, state)), c.M))
        else:
            metrics.update(self._update(system, state, c.M, per=per))
        return metrics

    def _update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
                objective: Callable[[], torch.Tensor] | None = None, per: float = 1.0
                ) -> dict[str, torch.Tensor]:
        """θ ← the E-MSA update from M = Σ_s ∇_θ H at the fixed x, p: real controls by Adam on −H
        (or, given the augmented ``objective``, by the inner maximiser), then the closed forms of
        the finite sets with the running average's rate α^per (``per``: the batch's share,
        :meth:`RunningAverage.share`). Returns the update's metrics (ΔH, flips, non-zeros, ρ_k)."""
        real, inner = self.settings["real"], self.settings["inner_maximisation"]
        dH = torch.zeros((), device=system.device, dtype=system.dtype)
        out: dict[str, torch.Tensor] = {}
        if self._real:  # real controls first: they read M before the discrete ones change
            with torch.no_grad():
                old = [self._work.get(n, "old", system.theta[n]) for n in self._real]
                torch._foreach_copy_(old, [system.theta[n].detach() for n in self._real])
                g = ascent_direction(system, M, self._real)
            if objective is not None:
                maximise(system, self._real, objective, method=inner["method"],
                         steps=inner["steps"], lr=self.lr(state, "inner_maximisation.lr"),
                         first=g, adam_state=state["inner_adam"], betas=tuple(real["betas"]),
                         eps=real["eps"])
            else:
                adam_ascent_(system, self._real, g, state["adam"], lr=self.lr(state, "real.lr"),
                             betas=tuple(real["betas"]), eps=real["eps"],
                             weight_decay=real["weight_decay"])
            with torch.no_grad():
                dH = dH + real_gain(system, g, old, self._real)
        if self._argmax is not None:
            ctl = self.sparsity.control
            dm, dH_d = self._argmax.step(system, M, state["mbar"],
                                         RunningAverage.weight(state, per), state["rho"],
                                         ctl.lam_scale(state) if ctl else None)
            out.update(dm)
            if ctl:
                out.update(self.sparsity.update(state, dm, per))
            dH = dH + dH_d
        out["dH"] = dH
        return out

    @staticmethod
    def _graph_scalars(state: dict[str, Any], per: float) -> tuple:
        """The Python numbers a captured update bakes into its kernels: α and the batch's share
        per (1 − α^per, the λ scale's gain per·η: a short last batch recaptures), the learning
        rate's scale (Adam's rate) and whether the λ scale moves yet (``nonzero_start``). With
        the addresses of θ and of the state's tensors (M̄, ρ, the Adam moments, the λ scale: a
        reloaded checkpoint recaptures) they key the graph."""
        return (state["alpha"], per, state.get("lr_scale", 1.0), state.get("nonzero_gain", 1.0))
