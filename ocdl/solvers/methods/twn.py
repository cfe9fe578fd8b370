"""Ternary weight networks (Li, Zhang & Liu, 2016) on the same System: latent weights with the
``ternary-threshold`` quantizer, Δ = 0.7·mean|W|, straight-through Adam or SGD
(:mod:`ocdl.solvers.latent_weights`, :mod:`ocdl.solvers.quantizers`).

Each step ternarises W per layer, T = sign(W)·[|W| > Δ] ∈ {−1, 0, +1} with the scale
α = mean{ |W_ij| : |W_ij| > Δ }, and the forward pass uses α·T. **Scale**: the System's ternary
set is {−1, 0, +1}, so θ = T is written into ``system.theta`` and α is left to the BatchNorm that
must follow every ternary stage (BN(α·z) = BN(z) up to BN's ε, in training and, with running
statistics gathered on the same network, in evaluation); a network where a ternary stage's output
is read by anything else is refused at ``init``, and α is reported as ``scale/<stage>``. The
gradient reaches W straight through, −M + λ sign θ for the model's l1 cost; W takes Adam
(``optimizer: adam``, the default) or SGD with momentum and L2 weight decay as in the paper's Caffe
runs (``optimizer: sgd``; ``nesterov: true`` for Nesterov). Real controls take Adam on ∇J.

Metrics: ``loss``, ``J`` (before the step), ``flips/<stage>``, ``nonzero/<stage>``, ``flips``,
``nonzero``, ``scale/<stage>``.
"""
from __future__ import annotations

from ..base import register_solver
from ..latent_weights import LatentWeightSolver, aliases_of


@register_solver
class TWN(LatentWeightSolver):
    """Ternary weight networks: latent real weights, threshold 0.7·mean|W|, BN absorbs α."""

    name = "twn"
    doc = ("ternary weight networks: latent W, T = sign(W)[|W| > 0.7 mean|W|], straight-through "
           "Adam or SGD with momentum")
    supports = ("ternary", "real", "box")
    aliases = aliases_of("lr", "lr_real", "betas", "eps", "weight_decay", "delta_factor",
                         "latent_init", "seed", "lr_decay", "lr_end", "optimizer",
                         "momentum", "nesterov", "cuda_graph")
    part_defaults = {"quantizer": {"name": "ternary-threshold"},
                     "latent": {"init": "kaiming_uniform"}}
    choices = {**LatentWeightSolver.choices, "latent_init": ("kaiming_uniform", "theta")}
