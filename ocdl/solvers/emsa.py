"""E-MSA, the extended (error-controlled) method of successive approximations
(Li, Chen, Tai & E, JMLR 2018; Li & Hao, ICML 2018; DESIGN.md §1).

Each iteration maximises, for all stages at once (x, p of the current θ^k fixed),

    Σ_s [ H_t(x_{s,t}, p_{s,t+1}, θ) − ρ/2 ‖x_{s,t+1} − f_t(x_{s,t}, θ)‖² − ρ/2 ‖p_{s,t} − ∇_x H_t(x_{s,t}, p_{s,t+1}, θ)‖² ]

**Finite sets** (binary, ternary, any ``levels``) use the paper's closed forms
(:mod:`ocdl.solvers.discrete`, run fused over layers by :mod:`ocdl.solvers.fused`): the running
average M̄ ← α M̄ + (1−α) M (M̄ initialised U(±``mbar_init``); 1−α is multiplied by
``alpha_decay`` = d at the end of every epoch, or, with ``alpha_end`` = r set, is (1−α₀)·r^π
after an epoch that ends the fraction π of the run, reaching r(1−α₀) at its end whatever its
length — d = r^(1/E) for E epochs; see :mod:`ocdl.solvers.base` for π; with
``alpha_batch_size`` = B₀ set, α is the rate per B₀ samples, and a step on a batch of S samples
uses α^(S/B₀), so M̄ averages over the same number of samples whatever the batch size),
ρ_k = ρ·max{|M̄_ij| : sign(M̄_ij) ≠ θ_ij} per layer, then the binary / ternary / general argmax
of M̄θ − λ|θ| − ρ_k(θ−θ_ij)² (binary: (ρ_k/2)). Here ρ is relative (a multiple of the largest
disagreeing |M̄|) and λ is the model's l1 cost of the control (``cost.running: l1``), not a
solver setting. With ``nonzero_target`` = B set, λ becomes a multiplier tuned during the run:
every positive λ is scaled by one factor s, moved after each step by multiplicative dual ascent
towards B non-zero entries over those controls (log s += ``nonzero_rate``·log(ν/B);
:mod:`ocdl.solvers.sparsity`), so the net keeps about B of its weights non-zero wherever the
scale of M̄ goes. With ``nonzero_start`` = π₀ > 0 the ascent waits: s stays 1 (the model's λ)
until an epoch ends the fraction π₀ of the run, so that the net learns before it is held at B.
With ``nonzero_end`` = π₁ > π₀ too, the target itself is annealed: from the non-zero fraction
the net has at π₀ to B at π₁ by the cubic schedule of gradual pruning, B + (ν₀ − B)(1 − τ)³,
τ = (π − π₀)/(π₁ − π₀), set after every epoch, so that λ prunes the net gradually instead of at
once. With ``nonzero_floor`` = f no layer is pruned below f non-zero: each penalised layer's
λ gets a factor c_i ≤ 1 of its own, moved by the same ascent towards ν_i ≥ f.

With ``keep_units`` every output unit u of a ternary weight (the row θ[u, ...] of a dense or
conv2d kernel) keeps a non-zero entry: the argmax is taken over such θ, which differs from the
paper's only where a row would end all zero, and there sets the entry of largest
|M̄ + 2ρ_kθ| to its sign (:func:`ocdl.solvers.fused.keep_units_`). A dead unit followed by
batchnorm and ReLU outputs the constant relu(β); with β ≤ 0 no gradient reaches its weights or
β again, so it stays dead, a unit pruned for good that no l1 count sees. While a target's λ
prunes, dense layers can lose half their units so (``dead/<stage>`` in the epoch records counts
them; docs/RESULTS.md). With one non-zero entry, batchnorm normalises the unit's input to unit
variance, so it keeps passing the ReLU for part of each batch.

**Real and box controls** (``continuous``):

* ``adam``: one Adam step on −H, i.e. on ∇J (the paper's choice for BatchNorm's scale and shift
  in binary/ternary networks; lr 1e-3, times ``lr_decay`` after every epoch; ``weight_decay``,
  0 by default, is decoupled as in AdamW);
* ``augmented``: ``inner_steps`` of ``inner`` (Adam, L-BFGS or gradient ascent) on the augmented
  Hamiltonian above, with the absolute ρ ``rho_real`` (default: ``rho``; p carries the 1/S of J
  while the feasibility errors are sums over samples and state entries, so useful values are
  small — 1e-5 on the residual CNN of models/mnist-resnet.yaml, where ρ = 0.5 keeps the inner
  Adam steps from training at all), all stages in one autograd call per inner step (their
  problems are separable); the inner Adam moments persist across iterations. The first inner
  gradient is M − λ sign θ from the reverse pass: the feasibility terms have zero gradient at θ^k;
* ``auto``: ``adam`` when the network has finite-set controls, else ``augmented``.

**Error control** (``adaptive_rho: true``). After the step φ is computed, on the same batch (same
random draws and batch statistics) the solver evaluates the actual decrease
``actual = J(θ^k) − J(φ)`` (J with its l1 costs) and the decrease the error estimate predicts,
``predicted = ΔH − (ρ/2)(E_x + E_p)``, with ΔH = Σ_t [H_t(φ) − H_t(θ^k)] exactly and E_x, E_p the
state and costate feasibility errors at the old x, p. Then, on the device (no host sync):

* **reject** when ``actual < accept_ratio · max(predicted, 0)`` — J rose, or fell by less than the
  fraction ``accept_ratio`` of a positive prediction: θ is restored to θ^k and ρ ← ρ·``rho_up``;
* **accept** otherwise; if moreover ``actual ≥ predicted`` (the estimate held: the step was
  safe at this ρ), ρ ← ρ·``rho_down``; else ρ is kept.

ρ stays within [``rho_min``, ``rho_max``]. A rejected step keeps the new M̄ and Adam moments (they
are statistics of the gradient, not of the step). Checking costs one more forward pass and one
Hamiltonian evaluation per step.

**Speed.** The finite-set update is fused (:mod:`ocdl.solvers.fused`) and never synchronises
with the host. With ``cuda_graph: true`` (or ``update``) on a CUDA device (and neither
``adaptive_rho`` nor the ``augmented`` mode), the whole update after the reverse pass — Adam on
the real controls, the closed forms and the metrics — is captured once as a CUDA graph and
replayed (:mod:`ocdl.solvers.graphs`), which removes its ~100 kernel launches per step. With
``cuda_graph: step`` the forward and reverse passes are captured with it: the whole step, batch
in, θ and metrics out, is one replay (the batch is copied into the graph's input buffers; a new
batch shape, α or learning-rate scale recaptures, once per epoch with the fitted schedules).
Neither changes a number: a replay runs the eager step's kernels (``pytest -m gpu``
compares them).

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

from ..errors import SolverError
from ..system import System
from .banks import DiscreteBanks
from .base import Solver, register_solver
from .fused import Workspace
from .graphs import GraphedUpdate, addresses, graphed_step
from .hamiltonian import (augmented_sum, control_stages, feasibility, l1_cost,
                          reference_costates, replay_objective, restore_, snapshot)
from .inner import METHODS, maximise
from .msa import DISCRETE, real_gain, split_controls
from .optim import adam_init, adam_step, ascent_direction, project_
from .sparsity import NonzeroTarget


@register_solver
class EMSA(Solver):
    """E-MSA: closed forms with a running average for finite sets, Adam or the augmented
    Hamiltonian for real ones, optional adaptive ρ."""

    name = "emsa"
    doc = "extended MSA: maximise H minus ρ-weighted feasibility errors (closed forms on finite sets)"
    supports = ("real", "box") + DISCRETE
    defaults: dict[str, Any] = {
        "rho": 0.5, "alpha": 0.999, "alpha_decay": 0.95, "mbar_init": 1e-6, "seed": 0,
        "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
        "continuous": "auto", "inner": "adam", "inner_steps": 5, "inner_lr": 1e-3,
        "adaptive_rho": False, "rho_up": 2.0, "rho_down": 0.9, "rho_min": 1e-8,
        "rho_max": 1e8, "accept_ratio": 0.1, "sets": None, "cuda_graph": False,
        "rho_real": None, "lr_decay": 1.0, "lr_end": None, "alpha_end": None,
        "nonzero_target": None, "nonzero_rate": 0.01, "nonzero_start": 0.0,
        "nonzero_end": None, "nonzero_floor": None, "alpha_batch_size": None,
        "keep_units": False}
    choices = {"continuous": ("auto", "adam", "augmented"), "inner": METHODS,
               "cuda_graph": (False, True, "update", "step"), "keep_units": (False, True)}

    def validate(self) -> None:
        super().validate()
        hp = self.hp
        self.require(hp["rho"] >= 0, "rho", "must be ≥ 0")
        self.require(hp["rho_real"] is None or (isinstance(hp["rho_real"], (int, float))
                                                and hp["rho_real"] >= 0),
                     "rho_real", "must be a number ≥ 0 (or null: use rho)")
        self.require(0 <= hp["alpha"] < 1, "alpha", "must be in [0, 1)")
        self.require(0 < hp["alpha_decay"] <= 1, "alpha_decay", "must be in (0, 1]")
        self.require_fraction_or_null("alpha_end")
        b0 = hp["alpha_batch_size"]
        self.require(b0 is None or (isinstance(b0, int) and not isinstance(b0, bool) and b0 >= 1),
                     "alpha_batch_size", "must be a whole number of samples ≥ 1, e.g. 100, or "
                     "null (α and nonzero_rate per step, whatever the batch size)")
        self.require(hp["mbar_init"] >= 0, "mbar_init", "must be ≥ 0")
        for k in ("lr", "inner_lr", "eps"):
            self.require(hp[k] > 0, k, "must be > 0")
        self.require(hp["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        self.require(hp["inner_steps"] >= 1, "inner_steps", "must be ≥ 1")
        self.require(hp["rho_up"] >= 1, "rho_up", "must be ≥ 1")
        self.require(0 < hp["rho_down"] <= 1, "rho_down", "must be in (0, 1]")
        self.require(0 < hp["rho_min"] <= hp["rho_max"], "rho_min", "must be in (0, rho_max]")
        self.require(0 <= hp["accept_ratio"] <= 1, "accept_ratio", "must be in [0, 1]")
        self.require_betas()
        target = hp["nonzero_target"]
        self.require(target is None or (isinstance(target, (int, float))
                                        and not isinstance(target, bool) and 0 < target < 1),
                     "nonzero_target", "must be a fraction in (0, 1), e.g. 0.02, or null (off)")
        rate = hp["nonzero_rate"]
        self.require(isinstance(rate, (int, float)) and not isinstance(rate, bool)
                     and 0 < rate <= 1, "nonzero_rate", "must be a number in (0, 1], e.g. 0.01")
        start = hp["nonzero_start"]
        self.require(isinstance(start, (int, float)) and not isinstance(start, bool)
                     and 0 <= start < 1, "nonzero_start",
                     "must be a fraction of the run in [0, 1), e.g. 0.5 (0: from the first step)")
        self.require(not start or target is not None, "nonzero_start",
                     "delays nonzero_target, which is not set; set nonzero_target too, or drop "
                     "nonzero_start")
        end = hp["nonzero_end"]
        self.require(end is None or (isinstance(end, (int, float)) and not isinstance(end, bool)
                                     and isinstance(start, (int, float)) and start < end <= 1),
                     "nonzero_end", "must be a fraction of the run in (nonzero_start, 1], e.g. "
                     "0.8 (the annealed target reaches nonzero_target there), or null (no anneal)")
        floor = hp["nonzero_floor"]
        self.require(floor is None or (isinstance(floor, (int, float))
                                       and not isinstance(floor, bool) and 0 < floor
                                       and (target is None or floor < target)),
                     "nonzero_floor", "must be a fraction in (0, nonzero_target), e.g. 0.005 (no "
                     "layer pruned below it), or null (off)")
        self.require(floor is None or target is not None, "nonzero_floor",
                     "bounds nonzero_target's pruning per layer, and nonzero_target is not set; "
                     "set nonzero_target too, or drop nonzero_floor")
        self.require(end is None or target is not None, "nonzero_end",
                     "anneals nonzero_target, which is not set; set nonzero_target too, or drop "
                     "nonzero_end")
        self.require(target is None or not hp["adaptive_rho"], "nonzero_target",
                     "cannot be combined with adaptive_rho, which compares J (with its l1 cost) "
                     "before and after each step at a fixed λ while nonzero_target moves λ; "
                     "set one of them")

    # ------------------------------------------------------------------ set-up
    def _prepare(self, system: System) -> None:
        if getattr(self, "_for", None) is system:
            return
        disc, real = split_controls(system)
        self._disc, self._real = disc, real
        self._banks = DiscreteBanks(system, disc, keep_units=self.hp["keep_units"]) \
            if disc else None
        if self.hp["keep_units"] and not (self._banks and any(self._banks.keep_units)):
            raise SolverError("keep_units keeps a non-zero entry in every output unit of a "
                              "ternary dense or conv2d weight, and this model has none; drop "
                              "keep_units")
        target = self.hp["nonzero_target"]
        self._sparsity = None
        if target is not None:
            if not disc:
                raise SolverError("nonzero_target applies to finite-set controls (ternary, levels "
                                  "with 0); this model's controls are all real; drop "
                                  "nonzero_target")
            self._sparsity = NonzeroTarget(system, self._banks.order, self._banks.keys, target,
                                           self.hp["nonzero_rate"], self.hp["nonzero_floor"])
        mode = self.hp["continuous"]
        self._mode = ("adam" if disc else "augmented") if mode == "auto" else mode
        self._ts_real = control_stages(system, real)
        self._ts_all = control_stages(system, disc + real)
        self._work = Workspace()
        self._graph = GraphedUpdate(
            "cuda_graph to update (only the update graphed) or false (--set cuda_graph=false)"
            if self.hp["cuda_graph"] == "step" else "cuda_graph to false (--set cuda_graph=false)")
        self._for = system

    def amp_unsafe(self, system: System) -> str | None:
        if self.hp["adaptive_rho"]:
            return ("adaptive_rho compares J before and after each step and weighs the state and "
                    "costate feasibility errors, differences that bfloat16 loses")
        disc, real = split_controls(system)
        mode = self.hp["continuous"]
        if real and (mode == "augmented" or (mode == "auto" and not disc)):
            return ("the augmented Hamiltonian's inner steps on the real controls weigh "
                    "‖x_{t+1} − f_t(x_t, θ)‖², a difference of near-equal states that bfloat16 "
                    "loses (continuous: adam takes M only)")
        return None

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        self._prepare(system)
        hp = self.hp
        gen = torch.Generator().manual_seed(hp["seed"])
        mbar = {}
        for n in self._disc:
            u = torch.rand(system.control[n].shape, generator=gen, dtype=torch.float64)
            mbar[n] = ((2 * u - 1) * hp["mbar_init"]).to(device=system.device,
                                                          dtype=system.dtype)
        real_params = {n: system.theta[n] for n in self._real}
        state = {"mbar": mbar, "alpha": hp["alpha"],
                 "rho": torch.tensor(hp["rho"], device=system.device, dtype=system.dtype),
                 "rho_real": torch.tensor(hp["rho"] if hp["rho_real"] is None
                                          else hp["rho_real"],
                                          device=system.device, dtype=system.dtype),
                 "adam": adam_init(real_params), "inner_adam": adam_init(real_params),
                 "iteration": 0}
        if self._sparsity:
            self._sparsity.fill_state(state, system)
            state["nonzero_gain"] = 0.0 if hp["nonzero_start"] else 1.0
            if hp["nonzero_end"] is not None and not hp["nonzero_start"]:
                self._sparsity.anneal_(state, system, 0.0)  # from the initial θ's fraction
        return state

    def end_epoch(self, system: System, state: dict[str, Any], epoch: int,
                  progress: float | None = None) -> dict[str, Any]:
        """1 − α ← d·(1 − α) (the paper's decay of the running average's rate), or
        1 − α = (1 − α₀)·alpha_end^π, the learning rates' decay (:meth:`Solver.end_epoch`),
        with ``nonzero_start`` = π₀ the λ scale's dual ascent switched on once π ≥ π₀, and with
        ``nonzero_end`` = π₁ the annealed target B_π set for the next epoch."""
        state = super().end_epoch(system, state, epoch, progress)
        start, end = self.hp["nonzero_start"], self.hp["nonzero_end"]
        if start and self.hp["nonzero_target"] is not None:
            pi = self.progress_of("nonzero_start", progress,
                                  "set nonzero_start to 0 (the target from the first step)")
            state["nonzero_gain"] = 1.0 if pi >= start else 0.0
        if end is not None and self.hp["nonzero_target"] is not None:
            self._prepare(system)
            pi = self.progress_of("nonzero_end", progress,
                                  "drop nonzero_end (a fixed target, no anneal)")
            if pi >= start:
                self._sparsity.anneal_(state, system, (pi - start) / (end - start))
        if self.hp["alpha_end"] is not None:
            state["alpha"] = 1.0 - (1.0 - self.hp["alpha"]) * self.at_progress("alpha_end",
                                                                              progress)
        else:
            state["alpha"] = 1.0 - (1.0 - state["alpha"]) * self.hp["alpha_decay"]
        return state

    # ------------------------------------------------------------------ step
    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        self._prepare(system)
        hp = self.hp
        if self._sparsity:  # a state saved without the target (or without its anneal or floor)
            self._sparsity.fill_state(state, system)
        adaptive = hp["adaptive_rho"]
        augmented = self._mode == "augmented" and bool(self._real)
        per = self.batch_scale(x)
        if not (adaptive or augmented):
            graph = hp["cuda_graph"] if system.device.type == "cuda" else False
            if graph == "step":
                metrics = graphed_step(
                    self._graph, system, state, x, y,
                    lambda xb, yb: self._plain_step(system, state, xb, yb, per, False),
                    self._graph_scalars(state, per))
            else:
                metrics = self._plain_step(system, state, x, y, per, bool(graph))
            state["iteration"] = state.get("iteration", 0) + 1
            return state, metrics

        rho = state["rho"]
        states = system.forward(x)
        c = system.costates(states, y, need_p=adaptive or augmented)
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J, "rho": rho}
        ts = self._ts_all if adaptive else self._ts_real
        p_ref = reference_costates(system, states, c, ts)
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
            metrics["state_error"] = parts["state_error"].detach()
            metrics["costate_error"] = parts["costate_error"].detach()

        if adaptive:
            fe = feasibility(system, states, c, self._ts_all, saved, p_ref)
            actual = J_old - replay_objective(system, states, x, y)
            predicted = fe["dH"] - 0.5 * rho_aug * (fe["state_error"] + fe["costate_error"])
            accept = actual >= hp["accept_ratio"] * predicted.clamp_min(0)
            restore_(system, saved, keep=accept)
            safe = accept & (actual >= predicted)
            new_rho = torch.where(accept, torch.where(safe, rho * hp["rho_down"], rho),
                                  rho * hp["rho_up"]).clamp(hp["rho_min"], hp["rho_max"])
            state["rho"] = new_rho
            if augmented:  # the absolute ρ of the real controls moves by the same factor
                state["rho_real"] = (rho_aug * new_rho / rho).clamp(hp["rho_min"], hp["rho_max"])
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
            metrics.update(self._graph(lambda M: self._update(system, state, M, per=per),
                                       (self._graph_scalars(state, per),
                                        addresses(system.theta, state)), c.M))
        else:
            metrics.update(self._update(system, state, c.M, per=per))
        return metrics

    def batch_scale(self, x: torch.Tensor) -> float:
        """S/B₀ for a batch of S samples with ``alpha_batch_size`` = B₀ set, else 1: the step
        then averages with α^(S/B₀) and moves the λ scale with ``nonzero_rate``·S/B₀, so that both
        are rates per B₀ samples (at S = 4B₀, 1 − α = 0.001 becomes ≈ 0.004)."""
        b0 = self.hp["alpha_batch_size"]
        return 1.0 if b0 is None else x.shape[0] / b0

    def _update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
                objective: Callable[[], torch.Tensor] | None = None, per: float = 1.0
                ) -> dict[str, torch.Tensor]:
        """θ ← the E-MSA update from M = Σ_s ∇_θ H at the fixed x, p: real controls by Adam on −H
        (or, given the augmented ``objective``, by the inner maximiser), then the closed forms of
        the finite sets with the running average's rate α^per (``per`` = :meth:`batch_scale`).
        Returns the update's metrics (ΔH, flips, non-zeros, ρ_k)."""
        hp = self.hp
        rho = state["rho"]
        dH = torch.zeros((), device=system.device, dtype=system.dtype)
        out: dict[str, torch.Tensor] = {}
        if self._real:  # real controls first: they read M before the discrete ones change
            with torch.no_grad():
                old = [self._work.get(n, "old", system.theta[n]) for n in self._real]
                torch._foreach_copy_(old, [system.theta[n].detach() for n in self._real])
                g = ascent_direction(system, M, self._real)
            if objective is not None:
                maximise(system, self._real, objective, method=hp["inner"],
                         steps=hp["inner_steps"], lr=self.lr(state, "inner_lr"), first=g,
                         adam_state=state["inner_adam"], betas=tuple(hp["betas"]),
                         eps=hp["eps"])
            else:
                adam_step({n: system.theta[n] for n in self._real}, g, state["adam"],
                          lr=self.lr(state), betas=tuple(hp["betas"]), eps=hp["eps"],
                          weight_decay=hp["weight_decay"], decoupled=True, maximize=True)
                project_(system, self._real)
            with torch.no_grad():
                dH = dH + real_gain(system, g, old, self._real)
        if self._banks is not None:
            ctl = self._sparsity
            dm, dH_d = self._banks.step(system, M, state["mbar"], 1.0 - state["alpha"] ** per,
                                        rho, ctl.lam_scale(state) if ctl else None)
            out.update(dm)
            if ctl:  # the next step's λ (held at the model's until nonzero_start)
                out.update(ctl.update(state[ctl.KEY], dm, per * state.get("nonzero_gain", 1.0),
                                      state[ctl.TARGET_KEY], state.get(ctl.FLOOR_KEY)))
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
