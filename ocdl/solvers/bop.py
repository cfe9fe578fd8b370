"""Bop, the binary optimizer (Helwegen et al., NeurIPS 2019; as in Larq's ``lq.optimizers.Bop``).

Binary weights have no latent real value: Bop keeps an exponential moving average of the loss
gradient g = ∇_θ J = −M and flips a weight when the average has been large and of the weight's
own sign (J would fall if it flipped):

    m ← (1 − γ) m + γ g,      θ ← −θ where θ·m > τ       (m starts at 0)

defaults τ = 1e-8 (``threshold``), γ = 1e-4 (``gamma``), Larq's. Real controls (BatchNorm) take
Adam on ∇J (lr 1e-3), as Larq pairs Bop with Adam for them.

Metrics: ``loss``, ``J`` (before the step), ``dH`` (= Σ M·Δθ, exact for dense/conv stages),
``flips/<stage>``, ``flips``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..system import Costates, System
from .base import register_solver
from .latent import DiscreteWeightSolver


@register_solver
class Bop(DiscreteWeightSolver):
    """Bop: flip binary weights where the gradient's moving average agrees with their sign."""

    name = "bop"
    kind = "binary"
    doc = "Bop: flip w where w·m > τ, m the moving average of ∇J (binary weights)"
    supports = ("binary", "real", "box")
    defaults: dict[str, Any] = {"threshold": 1e-8, "gamma": 1e-4, "lr_real": 1e-3,
                                "betas": [0.9, 0.999], "eps": 1e-8, "lr_decay": 1.0,
                                "lr_end": None, "cuda_graph": False}
    choices = {"cuda_graph": DiscreteWeightSolver.GRAPH_CHOICES}

    def validate(self) -> None:
        super().validate()
        self.require(self.hp["threshold"] >= 0, "threshold", "must be ≥ 0")
        self.require(0 < self.hp["gamma"] <= 1, "gamma", "must be in (0, 1]")
        for k in ("lr_real", "eps"):
            self.require(self.hp[k] > 0, k, "must be > 0")
        self.require_betas()

    def init(self, system: System) -> dict[str, Any]:
        self._start(system)
        return {"m": {n: torch.zeros_like(system.theta[n]).detach() for n in self._names},
                "adam_real": self._real.init_state(system), "iteration": 0}

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        hp, names = self.hp, self._names
        with torch.no_grad():
            m = [state["m"][n] for n in names]
            M = [c.M[n] for n in names]
            theta = [system.theta[n].detach() for n in names]
            A = [self._work.get(n, "a", system.theta[n]) for n in names]
            torch._foreach_mul_(m, 1.0 - hp["gamma"])
            torch._foreach_add_(m, M, alpha=-hp["gamma"])   # m ← (1−γ)m + γ g, g = −M
            for a, th, mi in zip(A, theta, m):
                torch.mul(th, mi, out=a)
                torch.gt(a, hp["threshold"], out=a)          # flip mask θ·m > τ
            flips = torch.stack(torch._foreach_norm(A, 1))
            torch._foreach_mul_(A, theta)                    # θ·mask = −Δθ/2
            lin = torch.stack([torch.dot(mm.reshape(-1), a.reshape(-1)) for mm, a in zip(M, A)])
            torch._foreach_add_(theta, A, alpha=-2.0)
        return {"dH": -2.0 * lin.sum(), **self._metrics(flips, None)}
