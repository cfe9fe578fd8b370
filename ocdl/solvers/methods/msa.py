"""Basic MSA, the method of successive approximations (Li, Chen, Tai & E, 2018; DESIGN.md §1).

One iteration: forward pass x_t, reverse pass p_t and M_t = Σ_s ∇_θ H_t, then for all stages at
once θ_t ← argmax_{θ ∈ Θ_t} Σ_s H_t(x_{s,t}, p_{s,t+1}, θ):

* finite sets: the closed-form argmax M l − λ|l| with ρ = 0 (ties keep the current θ;
  :mod:`ocdl.solvers.hamiltonian_argmax`);
* real and box sets: ``steps`` of the inner maximiser on Σ_t H_t (block ``inner_maximisation``:
  gradient ascent with step ``lr``, Adam — its ``betas`` and ``eps`` in block ``adam`` — or
  L-BFGS; projected onto a box; :mod:`ocdl.solvers.inner_maximisation`). One ``gd`` step is
  exactly gradient descent θ ← θ − lr ∇J, since ∇_θ Σ_t H_t = M − λ sign θ = −∇J.

Basic MSA has no control of the feasibility errors and often diverges; E-MSA is the remedy.
Metrics: ``loss``, ``J`` (before the step), ``dH`` (Σ_t ΔH_t = Σ M·Δθ with the l1/l2 costs exact
for finite sets; exact when f_t is linear in θ_t, first order otherwise), and for finite sets
``flips/<stage>``, ``nonzero/<stage>``, ``flips``, ``nonzero``.
"""
from __future__ import annotations

from typing import Any

import torch

from ...system import System
from ..base import Solver, register_solver
from ..hamiltonian import control_stages, hamiltonian_sum
from ..hamiltonian_argmax import FINITE_KINDS, FiniteSetArgmax
from ..inner_maximisation import InnerMaximisation, maximise
from ..first_order import adam_init, ascent_direction
from ..real_controls import AdamSettings, real_gain, split_controls
from ..schedules import LrSchedule
from ..workspace import Workspace


@register_solver
class MSA(Solver):
    """Basic MSA: θ_t ← argmax Σ_s H_t for every stage at once (no error control)."""

    name = "msa"
    doc = "basic method of successive approximations: θ_t ← argmax Σ_s H_t (may diverge)"
    supports = ("real", "box") + FINITE_KINDS
    parts = {"inner_maximisation": InnerMaximisation, "adam": AdamSettings,
             "lr_schedule": LrSchedule}
    top = {"sets": None}
    aliases = {"inner": "inner_maximisation.method", "inner_steps": "inner_maximisation.steps",
               "lr": "inner_maximisation.lr", "betas": "adam.betas", "eps": "adam.eps",
               "sets": "sets", "lr_decay": "lr_schedule.decay", "lr_end": "lr_schedule.end"}
    part_defaults = {"inner_maximisation": {"method": "gd", "steps": 1, "lr": 0.01}}

    def _recomputes(self) -> bool:
        """Whether the inner steps re-evaluate Σ_t H_t (more than one step along M)."""
        s = self.settings["inner_maximisation"]
        return s["steps"] > 1 or s["method"] == "lbfgs"

    def amp_unsafe(self, system: System) -> str | None:
        if split_controls(system)[1] and self._recomputes():
            return ("its inner steps on the real controls re-evaluate Σ_t H_t from the forward "
                    "states; use inner_steps: 1 (one step along M)")
        return None

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        self._prepare(system)
        return {"iteration": 0}

    def _prepare(self, system: System) -> None:
        """Per-system caches (control groups, buffers); rebuilt if another system comes."""
        if getattr(self, "_for", None) is system:
            return
        disc, real = split_controls(system)
        self._argmax = FiniteSetArgmax(system, disc, ties_keep=True) if disc else None
        self._real = real
        self._ts = control_stages(system, real)
        self._work = Workspace()
        self._for = system

    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        self._prepare(system)
        inner, adam = self.settings["inner_maximisation"], self.settings["adam"]
        real = self._real
        states = system.forward(x)
        c = system.costates(states, y, need_p=bool(real) and self._recomputes())
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J}
        dH = torch.zeros((), device=system.device, dtype=system.dtype)
        if real:
            with torch.no_grad():
                old = [self._work.get(n, "old", system.theta[n]) for n in real]
                torch._foreach_copy_(old, [system.theta[n].detach() for n in real])
                g = ascent_direction(system, c.M, real)
            maximise(system, real, lambda: hamiltonian_sum(system, states, c, self._ts),
                     method=inner["method"], steps=inner["steps"],
                     lr=self.lr(state, "inner_maximisation.lr"), first=g,
                     adam_state=adam_init({n: system.theta[n] for n in real})
                     if inner["method"] == "adam" else None,
                     betas=tuple(adam["betas"]), eps=adam["eps"])
            with torch.no_grad():
                dH = dH + real_gain(system, g, old, real)
        if self._argmax is not None:
            zero = torch.zeros((), device=system.device, dtype=system.dtype)
            dm, dH_d = self._argmax.step(system, c.M, None, 0.0, zero)
            dm.pop("rho_k/max", None)
            dm.pop("rho_k/mean", None)
            metrics.update(dm)
            dH = dH + dH_d
        metrics["dH"] = dH
        state["iteration"] = state.get("iteration", 0) + 1
        return state, metrics
