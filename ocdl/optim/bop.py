"""Bop, the binary optimizer (Helwegen et al., NeurIPS 2019), as a ``torch.optim.Optimizer``.

Binary parameters keep no latent real value: with g = ∇J = −M (``.grad``) and m starting at 0,

    m ← (1 − γ) m + γ g,      θ ← −θ where θ·m > τ

(:func:`ocdl.solvers.methods.bop.flip_step_`, the ``bop`` solver's step), with the group's
``threshold`` τ (1e-8) and ``gamma`` γ (1e-4), Larq's defaults. Real parameters (BatchNorm) take
Adam with the group's ``lr`` (:mod:`ocdl.optim.base`), as Larq pairs Bop with Adam. The moving
average is ``self.state[p]["m"]``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..solvers.discrete_weights import FlipMetrics
from ..solvers.methods.bop import Flip, flip_step_
from .base import REAL_DEFAULTS, ControlOptimizer


class Bop(ControlOptimizer):
    """Bop on binary parameters, Adam on real ones (see the module docstring)."""

    supports = ("binary", "real", "box")

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 threshold: float = 1e-8, gamma: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 put_in: str = "quantize", seed: int = 0):
        self.require("flip", {"threshold": threshold, "gamma": gamma}, Flip)
        super().__init__(params, {**REAL_DEFAULTS, "lr": lr, "betas": betas, "eps": eps,
                                  "control": control, "threshold": threshold, "gamma": gamma},
                         put_in=put_in, seed=seed)

    def _discrete_step(self, items, M) -> dict[str, torch.Tensor]:
        """m ← (1 − γ) m + γ g and θ ← −θ where θ·m > τ, per group."""
        by_group: dict[int, tuple[dict[str, Any], list[tuple[str, torch.Tensor]]]] = {}
        for n, p, g in items:
            by_group.setdefault(id(g), (g, []))[1].append((n, p))
        names, flips, dH = [], [], None
        for g, members in by_group.values():
            self.require("flip", {"threshold": g["threshold"], "gamma": g["gamma"]}, Flip)
            for _, p in members:
                if "m" not in self.state[p]:
                    self.state[p]["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            f, d = flip_step_([p.detach() for _, p in members],
                              [self.state[p]["m"] for _, p in members], [M[n] for n, _ in members],
                              [self._work.get(n, "a", p) for n, p in members],
                              gamma=float(g["gamma"]), threshold=float(g["threshold"]))
            names += [n for n, _ in members]
            flips.append(f)
            dH = d if dH is None else dH + d
        return {"dH": dH, **self._flip_metrics(names)(torch.cat(flips), None)}

    def _flip_metrics(self, names: list[str]) -> FlipMetrics:
        key = tuple(names)
        if getattr(self, "_fm_key", None) != key:
            self._fm, self._fm_key = FlipMetrics(self._view, names), key
        return self._fm
