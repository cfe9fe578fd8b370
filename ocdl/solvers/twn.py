"""Ternary weight networks (Li, Zhang & Liu, 2016) on the same System.

Real latent weights W live in the solver state. Each step ternarises them per layer,

    Δ = 0.7 · mean|W|,   T = sign(W)·[|W| > Δ] ∈ {−1, 0, +1},   α = mean{ |W_ij| : |W_ij| > Δ },

and the forward pass uses α·T. **Scale**: the System's ternary set is {−1, 0, +1}, so θ = T is
written into ``system.theta`` and α is left to the BatchNorm that must follow every ternary
stage (BN(α·z) = BN(z) up to BN's ε, in training and, with running statistics gathered on the
same network, in evaluation). A network where a ternary stage's output is read by anything other
than a batchnorm stage is refused at ``init`` with a :class:`SolverError`; α is reported as the
metric ``scale/<stage>`` for reference. The gradient reaches W by the straight-through estimator
∂J/∂W := ∂J/∂θ = −M (+ λ sign θ for the model's l1 cost); W takes a step of a standard optimiser
(TWN trains its full-precision weights like any others): Adam (``optimizer: adam``, the default)
or SGD with momentum μ and L2 weight decay as in the paper's Caffe runs (``optimizer: sgd``:
b ← μ·b + ∂J/∂W + wd·W, W ← W − lr·b, torch's ``SGD``; ``nesterov: true`` for Nesterov).
Real controls take Adam on ∇J.

Metrics: ``loss``, ``J`` (before the step), ``flips/<stage>``, ``nonzero/<stage>``, ``flips``,
``nonzero``, ``scale/<stage>``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..controls import Real
from ..errors import SolverError
from ..system import Costates, System
from .base import register_solver
from .latent import DiscreteWeightSolver
from .optim import adam_init, adam_step, sgd_init, sgd_step


def ternarise_(theta: list[torch.Tensor], latent: list[torch.Tensor], factor: float,
               work: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """θ ← sign(W)·[|W| > Δ] with Δ = factor·mean|W| per layer, in place; returns (Δ, α) per
    layer (α = mean of |W| above Δ, 0 for an all-zero layer). ``work`` is scratch like θ."""
    delta = torch.stack([n1 * (factor / w.numel())
                         for n1, w in zip(torch._foreach_norm(latent, 1), latent)])
    for i, (th, w, b) in enumerate(zip(theta, latent, work)):
        torch.gt(w, delta[i], out=th)
        torch.lt(w, -delta[i], out=b)
    torch._foreach_sub_(theta, work)
    count = torch.stack(torch._foreach_norm(theta, 1))
    mass = torch.stack([torch.dot(w.reshape(-1), t.reshape(-1)) for w, t in zip(latent, theta)])
    alpha = mass / count.clamp_min(1)
    return delta, alpha


def check_bn_follows(system: System, names: list[str]) -> None:
    """Every stage owning a ternary control must feed only batchnorm stages (which absorb α)."""
    for n in names:
        t = system.control[n].t
        readers = [s for s in system.stages if t + 1 in s.inputs]
        if not readers or any(r.op.name != "batchnorm" for r in readers):
            what = ", ".join(f"'{r.name}' ({r.op.name})" for r in readers) or "nothing"
            raise SolverError(f"solver 'twn' needs a batchnorm after ternary stage "
                              f"'{system.stages[t].name}' to absorb TWN's scale α (the System's "
                              f"ternary set is {{-1,0,1}}), but its output is read by {what}; "
                              "add a batchnorm stage or use emsa-ternary")


@register_solver
class TWN(DiscreteWeightSolver):
    """Ternary weight networks: latent real weights, threshold 0.7·mean|W|, BN absorbs α."""

    name = "twn"
    kind = "ternary"
    doc = ("ternary weight networks: latent W, T = sign(W)[|W| > 0.7 mean|W|], straight-through "
           "Adam or SGD with momentum")
    supports = ("ternary", "real", "box")
    defaults: dict[str, Any] = {"lr": 1e-3, "lr_real": 1e-3, "betas": [0.9, 0.999],
                                "eps": 1e-8, "weight_decay": 0.0, "delta_factor": 0.7,
                                "latent_init": "kaiming_uniform", "seed": 0,
                                "lr_decay": 1.0, "lr_end": None, "optimizer": "adam",
                                "momentum": 0.9, "nesterov": False, "cuda_graph": False}
    choices = {"latent_init": ("kaiming_uniform", "theta"), "optimizer": ("adam", "sgd"),
               "cuda_graph": DiscreteWeightSolver.GRAPH_CHOICES}

    def validate(self) -> None:
        super().validate()
        for k in ("lr", "lr_real", "eps", "delta_factor"):
            self.require(self.hp[k] > 0, k, "must be > 0")
        self.require(self.hp["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        self.require(0 <= self.hp["momentum"] < 1, "momentum", "must be in [0, 1)")
        self.require(isinstance(self.hp["nesterov"], bool), "nesterov", "must be true or false")
        self.require(not self.hp["nesterov"] or (self.hp["optimizer"] == "sgd"
                                                 and self.hp["momentum"] > 0),
                     "nesterov", "needs optimizer: sgd with momentum > 0")
        self.require_betas()

    def init(self, system: System) -> dict[str, Any]:
        self._start(system)
        check_bn_follows(system, self._names)
        gen = torch.Generator().manual_seed(self.hp["seed"])
        latent = {}
        for n in self._names:
            th = system.theta[n].detach()
            w = (Real("kaiming_uniform").init(th.shape, gen, torch.float64)
                 if self.hp["latent_init"] == "kaiming_uniform" else th.clone())
            latent[n] = w.to(device=th.device, dtype=th.dtype)
        if self._names:
            with torch.no_grad():
                ternarise_([system.theta[n].detach() for n in self._names],
                           [latent[n] for n in self._names],
                           self.hp["delta_factor"],
                           [self._work.get(n, "b", system.theta[n]) for n in self._names])
        opt = ({"adam": adam_init(latent)} if self.hp["optimizer"] == "adam" else
               {"sgd": sgd_init(latent)})
        return {"latent": latent, **opt, "adam_real": self._real.init_state(system),
                "iteration": 0}

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        hp, names = self.hp, self._names
        with torch.no_grad():
            g = {}
            for n in names:  # ascent direction of the full Hamiltonian: M − λ sign θ
                lam = system.control[n].l1
                g[n] = c.M[n].sub_(system.theta[n].detach(), alpha=lam) if lam else c.M[n]
        latent = {n: state["latent"][n] for n in names}
        if hp["optimizer"] == "sgd":
            sgd_step(latent, g, state["sgd"], lr=self.lr(state), momentum=hp["momentum"],
                     nesterov=hp["nesterov"], weight_decay=hp["weight_decay"], maximize=True)
        else:
            adam_step(latent, g, state["adam"], lr=self.lr(state), betas=tuple(hp["betas"]),
                      eps=hp["eps"], weight_decay=hp["weight_decay"], maximize=True)
        with torch.no_grad():
            theta = [system.theta[n].detach() for n in names]
            old = [self._work.get(n, "old", system.theta[n]) for n in names]
            torch._foreach_copy_(old, theta)
            _, alpha = ternarise_(theta, [state["latent"][n] for n in names], hp["delta_factor"],
                                  [self._work.get(n, "b", system.theta[n]) for n in names])
            torch._foreach_sub_(old, theta)  # −Δθ ∈ {0, ±1, ±2}
            n1 = torch.stack(torch._foreach_norm(old, 1))
            n2 = torch.stack(torch._foreach_norm(old, 2)).square()
            nnz = torch.stack(torch._foreach_norm(theta, 1))
        metrics = self._metrics(1.5 * n1 - 0.5 * n2, nnz)
        for i, n in enumerate(names):
            metrics[f"scale/{self._metrics.keys[n]}"] = alpha[i]
        return metrics
