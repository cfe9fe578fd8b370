"""The real and box controls of a network whose weights are discrete or that (E-)MSA trains.

M = Σ_s ∇_θ H = −∇J from the reverse pass, so one Adam step on −H is one Adam step on J
(torch's fused kernel, ``maximize=True`` on M − λ sign θ, then the projection Π_Θ onto box
sets): the paper's rule for BatchNorm's scale and shift in binary and ternary networks (lr 1e-3),
and what the baselines BinaryConnect, TWN and Bop give their real controls. E-MSA may instead take
the inner maximisation of the augmented Hamiltonian (:mod:`ocdl.solvers.inner_maximisation`).

:class:`RealControls` is E-MSA's part (block ``real``): ``update`` — ``adam``, ``augmented`` or
``auto`` (adam when the network has finite-set controls, else augmented) — and the Adam settings
``lr``, ``betas``, ``eps`` and ``weight_decay`` (decoupled, as in AdamW; its ``betas`` and
``eps`` also serve the inner Adam). :class:`AdamSettings` is the same Adam block for solvers
that only take Adam steps.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..system import System
from .first_order import adam_step, ascent_direction, project_
from .settings import Part, Require, betas_ok, positive


def split_controls(system: System) -> tuple[list[str], list[str]]:
    """(finite-set control names, real/box control names) in system order."""
    disc = [c.name for c in system.controls if c.cset.discrete]
    real = [c.name for c in system.controls if not c.cset.discrete]
    return disc, real


def adam_ascent_(system: System, names: Sequence[str], g: dict[str, torch.Tensor],
                 state: dict[str, Any], *, lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float = 0.0) -> None:
    """One Adam step ascending ``g`` (= M − λ sign θ, from :func:`ascent_direction`) on the
    controls ``names`` in place, weight decay decoupled, then θ ← Π_Θ(θ)."""
    adam_step({n: system.theta[n] for n in names}, g, state, lr=lr, betas=betas, eps=eps,
              weight_decay=weight_decay, decoupled=True, maximize=True)
    project_(system, names)


def real_gain(system: System, g: dict[str, torch.Tensor], old: list[torch.Tensor],
              names: list[str]) -> torch.Tensor:
    """Σ g·Δθ over ``names`` with Δθ = θ − old (``old`` is overwritten with −g·Δθ): the first-order
    ΔH of a step of the real controls."""
    cur = [system.theta[n].detach() for n in names]
    torch._foreach_sub_(old, cur)  # old − new = −Δθ
    torch._foreach_mul_(old, [g[n] for n in names])
    return -torch.cat([o.reshape(-1) for o in old]).sum()


class AdamSettings(Part):
    """Settings of Adam steps: ``lr``, ``betas``, ``eps`` (> 0) and ``weight_decay`` (≥ 0)."""

    DEFAULTS = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    DOCS = {"lr": "Adam's learning rate of the block's controls (E-MSA's real block: BatchNorm's "
                  "scale and shift)",
            "betas": "Adam's moment decay rates (β₁, β₂)",
            "eps": "Adam's ε",
            "weight_decay": "L2 weight decay"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        positive(s, require, "lr", "eps")
        require(s["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        betas_ok(s, require)


class RealControls(AdamSettings):
    """E-MSA's real controls: ``update`` (auto | adam | augmented) and the Adam settings."""

    DEFAULTS = {"update": "auto", **AdamSettings.DEFAULTS}
    DOCS = {"update": "real controls: an Adam step on −H (adam), inner steps on the augmented "
                      "Hamiltonian (augmented), or auto: adam when the network has finite sets",
            **AdamSettings.DOCS}
    CHOICES = {"update": ("auto", "adam", "augmented")}

    @staticmethod
    def mode(update: str, has_finite: bool) -> str:
        """``adam`` or ``augmented``: ``auto`` is adam when the network has finite-set controls
        (the paper's BatchNorm rule), augmented otherwise."""
        return ("adam" if has_finite else "augmented") if update == "auto" else update


def real_adam_step(system: System, names: list[str], M: dict[str, torch.Tensor],
                   state: dict[str, Any], *, lr: float, betas: tuple[float, float], eps: float
                   ) -> None:
    """The baselines' step of their real controls ``names``: Adam on ∇J (nothing when there are
    none)."""
    if names:
        adam_ascent_(system, names, ascent_direction(system, M, names), state, lr=lr,
                     betas=betas, eps=eps)
