"""Latent weights with any quantizer (:mod:`ocdl.solvers.latent_weights`): the composition that
BinaryConnect and TWN fix, open to presets. "Adam on latent weights with the nearest-level
quantizer" is the preset ``latent-nearest``:

    solver: latent
    quantizer: {name: nearest}
    latent: {init: theta, clip: null}
    straight_through: {optimizer: adam, lr: 1.0e-3}
"""
from __future__ import annotations

from ..base import register_solver
from ..latent_weights import ALIASES, LatentWeightSolver


@register_solver
class Latent(LatentWeightSolver):
    """Latent real weights W, θ = Q(W) for a quantizer Q by name, straight-through steps."""

    name = "latent"
    doc = "latent real weights W, θ = Q(W) (quantizer by name), straight-through Adam or SGD"
    aliases = ALIASES
    part_defaults = {"quantizer": {"name": "nearest"}, "latent": {"init": "theta"}}
