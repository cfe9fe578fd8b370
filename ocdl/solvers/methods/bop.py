"""Bop, the binary optimizer (Helwegen et al., NeurIPS 2019; as in Larq's ``lq.optimizers.Bop``).

Binary weights have no latent real value: Bop keeps an exponential moving average of the loss
gradient g = ∇_θ J = −M and flips a weight when the average has been large and of the weight's
own sign (J would fall if it flipped):

    m ← (1 − γ) m + γ g,      θ ← −θ where θ·m > τ       (m starts at 0)

block ``flip``: τ = ``threshold`` (1e-8), γ = ``gamma`` (1e-4), Larq's defaults. Real controls
(BatchNorm) take Adam on ∇J (block ``real``, lr 1e-3), as Larq pairs Bop with Adam for them
(:mod:`ocdl.solvers.discrete_weights`).

Metrics: ``loss``, ``J`` (before the step), ``dH`` (= Σ M·Δθ, exact for dense/conv stages),
``flips/<stage>``, ``flips``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...system import Costates, System
from ..base import register_solver
from ..cuda_graphs import Execution
from ..discrete_weights import DiscreteWeightSolver
from ..real_controls import AdamSettings
from ..schedules import LrSchedule
from ..settings import Part, Require


class Flip(Part):
    """Block ``flip``: ``threshold`` τ ≥ 0 and ``gamma`` γ ∈ (0, 1]."""

    DEFAULTS = {"threshold": 1e-8, "gamma": 1e-4}
    DOCS = {"threshold": "Bop's flip threshold τ: flip w where w·m > τ",
            "gamma": "Bop's averaging rate γ: m ← (1−γ) m + γ·∇J"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        require(s["threshold"] >= 0, "threshold", "must be ≥ 0")
        require(0 < s["gamma"] <= 1, "gamma", "must be in (0, 1]")


@register_solver
class Bop(DiscreteWeightSolver):
    """Bop: flip binary weights where the gradient's moving average agrees with their sign."""

    name = "bop"
    kinds = ("binary",)
    doc = "Bop: flip w where w·m > τ, m the moving average of ∇J (binary weights)"
    supports = ("binary", "real", "box")
    parts = {"flip": Flip, "real": AdamSettings, "lr_schedule": LrSchedule,
             "execution": Execution}
    aliases = {"threshold": "flip.threshold", "gamma": "flip.gamma", "lr_real": "real.lr",
               "betas": "real.betas", "eps": "real.eps", "lr_decay": "lr_schedule.decay",
               "lr_end": "lr_schedule.end", "cuda_graph": "execution.cuda_graph"}

    def init(self, system: System) -> dict[str, Any]:
        self._start(system)
        return {"m": {n: torch.zeros_like(system.theta[n]).detach() for n in self._names},
                "adam_real": self.real_state(system), "iteration": 0}

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        s, names = self.settings["flip"], self._names
        flips, dH = flip_step_([system.theta[n].detach() for n in names],
                               [state["m"][n] for n in names], [c.M[n] for n in names],
                               self.scratch(names, system)("a"), gamma=s["gamma"],
                               threshold=s["threshold"])
        return {"dH": dH, **self._metrics(flips, None)}


def flip_step_(theta: list[torch.Tensor], m: list[torch.Tensor], M: list[torch.Tensor],
               A: list[torch.Tensor], *, gamma: float, threshold: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bop's step on plain tensors, in place: m ← (1 − γ) m + γ g with g = −M, then θ ← −θ where
    θ·m > τ. ``A`` is scratch shaped like θ. Returns (flips per tensor, ΔH = Σ M·Δθ)."""
    with torch.no_grad():
        torch._foreach_mul_(m, 1.0 - gamma)
        torch._foreach_add_(m, M, alpha=-gamma)          # m ← (1−γ)m + γ g, g = −M
        for a, th, mi in zip(A, theta, m):
            torch.mul(th, mi, out=a)
            torch.gt(a, threshold, out=a)                # flip mask θ·m > τ
        flips = torch.stack(torch._foreach_norm(A, 1))
        torch._foreach_mul_(A, theta)                    # θ·mask = −Δθ/2
        lin = torch.stack([torch.dot(mm.reshape(-1), a.reshape(-1)) for mm, a in zip(M, A)])
        torch._foreach_add_(theta, A, alpha=-2.0)
    return flips, -2.0 * lin.sum()
