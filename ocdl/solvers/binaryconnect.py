"""BinaryConnect (Courbariaux, Bengio & David, NeurIPS 2015) on the same System.

Real latent weights W ∈ [−1, 1] live in the solver state; the forward pass uses θ = sign(W)
(sign(0) = +1), or with ``stochastic: true`` θ = +1 with probability hard_sigmoid(W) =
clip((W+1)/2, 0, 1), else −1. The straight-through estimator passes the gradient through the
binarisation, ∂J/∂W := ∂J/∂θ = −M; W takes an Adam step and is clipped to [−1, 1]. Afterwards
θ = sign(W) is written into ``system.theta``, so evaluation and checkpoints see the deterministic
binary network (in stochastic mode a fresh sample replaces it before each forward pass).

The latent weights live in [−1, 1] and binarise to ±1, as in the reference code's scripts
(Courbariaux's BinaryConnect ``mnist.py`` and ``cifar10.py``: ``H = 1``, weights initialised
U(−H, H); BatchNorm absorbs any scale). With ``lr_scale: glorot`` each layer's Adam step is
multiplied by the code's ``W_LR_scale`` = 1/H_g, H_g = sqrt(1.5/(fan_in + fan_out)) the Glorot
bound (for a conv, fan_in = k_h·k_w·C_in and fan_out = k_h·k_w·C_out), i.e.
W ← clip(W + (1/H_g)·(Adam_lr(W) − W), −1, 1), the code's update; ``none`` uses ``lr`` as is.
The scripts start the learning rate at 1e-3 (MNIST, the preset's) and 3e-3 (CIFAR-10).
Real controls (BatchNorm scale and shift) take Adam on ∇J with ``lr_real``.

Metrics: ``loss``, ``J`` (before the step), ``flips/<stage>``, ``flips``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..system import Costates, System
from .base import register_solver
from .latent import DiscreteWeightSolver, glorot_h, sign_into_
from .optim import adam_init, adam_step


@register_solver
class BinaryConnect(DiscreteWeightSolver):
    """BinaryConnect: latent real weights, sign in the forward pass, straight-through gradient."""

    name = "binaryconnect"
    kind = "binary"
    doc = "BinaryConnect: real latent weights, sign(W) forward, straight-through Adam, clip"
    supports = ("binary", "real", "box")
    defaults: dict[str, Any] = {"lr": 1e-3, "lr_scale": "glorot", "lr_real": 1e-3,
                                "betas": [0.9, 0.999], "eps": 1e-8, "stochastic": False,
                                "latent_init": "uniform", "seed": 0, "lr_decay": 1.0,
                                "lr_end": None, "cuda_graph": False}
    choices = {"lr_scale": ("glorot", "none"), "latent_init": ("uniform", "theta"),
               "cuda_graph": DiscreteWeightSolver.GRAPH_CHOICES}

    def validate(self) -> None:
        super().validate()
        for k in ("lr", "lr_real", "eps"):
            self.require(self.hp[k] > 0, k, "must be > 0")
        self.require_betas()
        self.require(not (self.hp["cuda_graph"] and self.hp["stochastic"]), "cuda_graph",
                     "cannot capture stochastic binarisation (its draws come from a generator "
                     "whose state the run saves after every step); set stochastic: false or "
                     "cuda_graph: false")

    def _setup(self, system: System) -> None:
        scale = {n: (1.0 / glorot_h(system.control[n].shape)
                     if self.hp["lr_scale"] == "glorot" else 1.0) for n in self._names}
        groups: dict[float, list[str]] = {}
        for n in self._names:
            groups.setdefault(scale[n], []).append(n)
        self._groups = groups
        self._gen = torch.Generator(device=system.device).manual_seed(self.hp["seed"] + 1)

    def init(self, system: System) -> dict[str, Any]:
        self._start(system)
        gen = torch.Generator().manual_seed(self.hp["seed"])
        latent = {}
        for n in self._names:
            th = system.theta[n].detach()
            if self.hp["latent_init"] == "uniform":
                w = torch.rand(th.shape, generator=gen, dtype=torch.float64) * 2 - 1
                latent[n] = w.to(device=th.device, dtype=th.dtype)
            else:
                latent[n] = th.clone()
        with torch.no_grad():
            sign_into_([system.theta[n].detach() for n in self._names],
                       [latent[n] for n in self._names])
        return {"latent": latent, "adam": adam_init(latent),
                "adam_real": self._real.init_state(system), "iteration": 0}

    def _before_forward(self, system: System, state: dict[str, Any]) -> None:
        """Stochastic BinaryConnect: draw θ = +1 with probability clip((W+1)/2, 0, 1)."""
        if not self.hp["stochastic"]:
            return
        if "rng" in state:  # resume the binarisation draws of a checkpointed run
            self._gen.set_state(state["rng"])
        with torch.no_grad():
            theta = [system.theta[n].detach() for n in self._names]
            for th, n in zip(theta, self._names):
                w = state["latent"][n]
                u = torch.rand(w.shape, generator=self._gen, device=w.device, dtype=w.dtype)
                torch.lt(u.mul_(2).sub_(1), w, out=th)
            torch._foreach_mul_(theta, 2.0)
            torch._foreach_sub_(theta, 1.0)
        state["rng"] = self._gen.get_state()

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        hp, names = self.hp, self._names
        for scale, group in self._groups.items():  # straight-through: ascend M
            adam_step({n: state["latent"][n] for n in group}, {n: c.M[n] for n in group},
                      state["adam"], lr=self.lr(state) * scale, betas=tuple(hp["betas"]),
                      eps=hp["eps"], maximize=True)
        with torch.no_grad():
            theta = [system.theta[n].detach() for n in names]
            latent = [state["latent"][n] for n in names]
            torch._foreach_clamp_min_(latent, -1.0)
            torch._foreach_clamp_max_(latent, 1.0)
            new = [self._work.get(n, "new", system.theta[n]) for n in names]
            sign_into_(new, latent)
            # θ_new·θ_old = N − 2·flips (against the forward pass's θ)
            agree = torch.stack([torch.dot(a.reshape(-1), b.reshape(-1))
                                 for a, b in zip(new, theta)])
            flips = (self._metrics.numel - agree) / 2
            torch._foreach_copy_(theta, new)
        return self._metrics(flips, None)
