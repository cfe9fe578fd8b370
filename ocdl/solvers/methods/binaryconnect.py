"""BinaryConnect (Courbariaux, Bengio & David, NeurIPS 2015) on the same System: latent weights
with the ``sign`` quantizer, clipped to [−1, 1], straight-through Adam
(:mod:`ocdl.solvers.latent_weights`).

The forward pass uses θ = sign(W) (sign(0) = +1), or with ``stochastic: true`` θ = +1 with
probability hard_sigmoid(W) = clip((W+1)/2, 0, 1), else −1 (a fresh sample before each forward
pass; afterwards θ = sign(W) is written into ``system.theta``, so evaluation and checkpoints see
the deterministic binary network). The latent weights live in [−1, 1], initialised U(−H, H) with
H = 1, as in the reference code's scripts (Courbariaux's ``mnist.py`` and ``cifar10.py``;
BatchNorm absorbs any scale). With ``lr_scale: glorot`` each layer's Adam step is multiplied by
the code's ``W_LR_scale`` = 1/H_g, the Glorot bound: W ← clip(W + (1/H_g)·(Adam_lr(W) − W), −1, 1),
the code's update; ``none`` uses ``lr`` as is. The scripts start the learning rate at 1e-3
(MNIST, the preset's) and 3e-3 (CIFAR-10). Real controls (BatchNorm scale and shift) take Adam
on ∇J with ``lr_real``.

Metrics: ``loss``, ``J`` (before the step), ``flips/<stage>``, ``flips`` (and ``nonzero``: 1).
"""
from __future__ import annotations

from ..base import register_solver
from ..latent_weights import LatentWeightSolver, aliases_of


@register_solver
class BinaryConnect(LatentWeightSolver):
    """BinaryConnect: latent real weights, sign in the forward pass, straight-through gradient."""

    name = "binaryconnect"
    doc = "BinaryConnect: real latent weights, sign(W) forward, straight-through Adam, clip"
    supports = ("binary", "real", "box")
    aliases = aliases_of("lr", "lr_scale", "lr_real", "betas", "eps", "stochastic",
                         "latent_init", "seed", "lr_decay", "lr_end", "cuda_graph")
    part_defaults = {"quantizer": {"name": "sign"}, "latent": {"init": "uniform", "clip": 1.0},
                     "straight_through": {"lr_scale": "glorot"}}
    choices = {**LatentWeightSolver.choices, "latent_init": ("uniform", "theta")}
