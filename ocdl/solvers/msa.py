"""Basic MSA, the method of successive approximations (Li, Chen, Tai & E, 2018; DESIGN.md §1).

One iteration: forward pass x_t, reverse pass p_t and M_t = Σ_s ∇_θ H_t, then for all stages at
once θ_t ← argmax_{θ ∈ Θ_t} Σ_s H_t(x_{s,t}, p_{s,t+1}, θ):

* finite sets: elementwise closed form argmax_l M l − λ|l| (ties keep the current θ);
* real and box sets: ``inner_steps`` of an inner maximiser (:mod:`ocdl.solvers.inner`: gradient
  ascent with step ``lr``, Adam or L-BFGS; projected onto a box). One ``gd`` step is exactly
  gradient descent θ ← θ − lr ∇J, since ∇_θ Σ_t H_t = M − λ sign θ = −∇J.

Basic MSA has no control of the feasibility errors and often diverges; E-MSA (:mod:`emsa`) is the
remedy. Metrics: ``loss``, ``J`` (before the step), ``dH`` (Σ_t ΔH_t = Σ M·Δθ with the l1/l2
costs exact for finite sets; exact when f_t is linear in θ_t, first order otherwise), and for
finite sets ``flips/<stage>``, ``nonzero/<stage>``, ``flips``, ``nonzero``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..system import System
from .banks import DiscreteBanks
from .base import Solver, register_solver
from .hamiltonian import control_stages, hamiltonian_sum
from .inner import METHODS, maximise
from .optim import adam_init, ascent_direction
from .fused import Workspace

DISCRETE = ("binary", "ternary", "levels")


def split_controls(system: System) -> tuple[list[str], list[str]]:
    """(discrete control names, real/box control names) in system order."""
    disc = [c.name for c in system.controls if c.cset.discrete]
    real = [c.name for c in system.controls if not c.cset.discrete]
    return disc, real


def real_gain(system: System, g: dict[str, torch.Tensor], old: list[torch.Tensor],
              names: list[str]) -> torch.Tensor:
    """Σ g·Δθ over ``names`` with Δθ = θ − old (``old`` is overwritten with −g·Δθ)."""
    cur = [system.theta[n].detach() for n in names]
    torch._foreach_sub_(old, cur)  # old − new = −Δθ
    torch._foreach_mul_(old, [g[n] for n in names])
    return -torch.cat([o.reshape(-1) for o in old]).sum()


@register_solver
class MSA(Solver):
    """Basic MSA: θ_t ← argmax Σ_s H_t for every stage at once (no error control)."""

    name = "msa"
    doc = "basic method of successive approximations: θ_t ← argmax Σ_s H_t (may diverge)"
    supports = ("real", "box") + DISCRETE
    defaults = {"inner": "gd", "inner_steps": 1, "lr": 0.01, "betas": [0.9, 0.999],
                "eps": 1e-8, "sets": None, "lr_decay": 1.0, "lr_end": None}
    choices = {"inner": METHODS}

    def validate(self) -> None:
        super().validate()
        self.require(self.hp["inner_steps"] >= 1, "inner_steps", "must be ≥ 1")
        self.require(self.hp["lr"] > 0, "lr", "must be > 0")
        self.require(self.hp["eps"] > 0, "eps", "must be > 0")
        b = self.hp["betas"]
        self.require(len(b) == 2 and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b),
                     "betas", "must be two numbers in [0, 1)")

    def amp_unsafe(self, system: System) -> str | None:
        if split_controls(system)[1] and (self.hp["inner_steps"] > 1 or
                                          self.hp["inner"] == "lbfgs"):
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
        self._banks = DiscreteBanks(system, disc, ties_keep=True) if disc else None
        self._real = real
        self._ts = control_stages(system, real)
        self._work = Workspace()
        self._for = system

    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        self._prepare(system)
        hp = self.hp
        real = self._real
        recompute = bool(real) and (hp["inner_steps"] > 1 or hp["inner"] == "lbfgs")
        states = system.forward(x)
        c = system.costates(states, y, need_p=recompute)
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J}
        dH = torch.zeros((), device=system.device, dtype=system.dtype)
        if real:
            with torch.no_grad():
                old = [self._work.get(n, "old", system.theta[n]) for n in real]
                torch._foreach_copy_(old, [system.theta[n].detach() for n in real])
                g = ascent_direction(system, c.M, real)
            maximise(system, real, lambda: hamiltonian_sum(system, states, c, self._ts),
                     method=hp["inner"], steps=hp["inner_steps"], lr=self.lr(state), first=g,
                     adam_state=adam_init({n: system.theta[n] for n in real})
                     if hp["inner"] == "adam" else None,
                     betas=tuple(hp["betas"]), eps=hp["eps"])
            with torch.no_grad():
                dH = dH + real_gain(system, g, old, real)
        if self._banks is not None:
            zero = torch.zeros((), device=system.device, dtype=system.dtype)
            dm, dH_d = self._banks.step(system, c.M, None, 0.0, zero)
            dm.pop("rho_k/max", None)
            dm.pop("rho_k/mean", None)
            metrics.update(dm)
            dH = dH + dH_d
        metrics["dH"] = dH
        state["iteration"] = state.get("iteration", 0) + 1
        return state, metrics
