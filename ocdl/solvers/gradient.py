"""Gradient baselines on the same compiled System: SGD and Adam / AdamW.

The gradient is g = ∇J = −M from the reverse pass (:meth:`System.costates`), plus λ sign(θ), the
subgradient of an l1 cost λ‖θ‖₁ on a control; box controls are projected after each step. The
updates are torch's own functional optimisers (fused Adam, foreach SGD), so a step matches
``torch.optim.SGD`` / ``Adam`` / ``AdamW`` on the same gradients exactly. Finite control sets are
refused: use BinaryConnect, TWN, Bop or E-MSA for those.

Metrics: ``loss``, ``J`` (before the step) and ``grad_norm`` (‖∇J‖₂ over all controls).
"""
from __future__ import annotations

import abc
from typing import Any

import torch

from ..system import System
from .base import Solver, register_solver
from .optim import (adam_init, adam_step, ascent_direction, descent_grads, project_, sgd_init,
                    sgd_step)


def grad_norm(g: dict[str, torch.Tensor]) -> torch.Tensor:
    """‖g‖₂ over all tensors (one foreach reduction)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(g.values()), 2)))


class FirstOrder(Solver):
    """One step of a first-order method on every control: forward pass, reverse pass (M = −∇J),
    :meth:`update` (the method's own rule), projection onto box sets."""

    @abc.abstractmethod
    def update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
               names: list[str]) -> dict[str, torch.Tensor]:
        """Update the controls ``names`` in place from M; return the gradient used (∇J or −∇J,
        for the ``grad_norm`` metric)."""

    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        names = [c.name for c in system.controls]
        c = system.costates(system.forward(x), y, need_p=False)
        g = self.update(system, state, c.M, names)
        metrics = {"loss": c.loss, "J": c.J, "grad_norm": grad_norm(g)}
        project_(system, names)
        state["iteration"] += 1
        return state, metrics


@register_solver
class SGD(FirstOrder):
    """θ ← θ − lr (g + wd θ) with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

    name = "sgd"
    doc = "stochastic gradient descent (momentum, Nesterov, weight decay) on ∇J"
    supports = ("real", "box")
    defaults = {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                "weight_decay": 0.0, "lr_decay": 1.0, "lr_end": None}

    def validate(self) -> None:
        super().validate()
        self.require(self.hp["lr"] > 0, "lr", "must be > 0")
        self.require(self.hp["momentum"] >= 0, "momentum", "must be ≥ 0")
        self.require(self.hp["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        self.require(not self.hp["nesterov"] or (self.hp["momentum"] > 0
                                                 and self.hp["dampening"] == 0),
                     "nesterov", "needs momentum > 0 and dampening 0")

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        return {"sgd": sgd_init(system.theta), "iteration": 0}

    def update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
               names: list[str]) -> dict[str, torch.Tensor]:
        hp = self.hp
        g = descent_grads(system, M, names)
        sgd_step({n: system.theta[n] for n in names}, g, state["sgd"], lr=self.lr(state),
                 momentum=hp["momentum"], dampening=hp["dampening"], nesterov=hp["nesterov"],
                 weight_decay=hp["weight_decay"])
        return g


@register_solver
class Adam(FirstOrder):
    """Adam (Kingma & Ba 2015) on ∇J; ``decoupled: true`` gives AdamW (Loshchilov & Hutter)."""

    name = "adam"
    doc = "Adam / AdamW on ∇J (torch's fused kernel)"
    supports = ("real", "box")
    defaults = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                "decoupled": False, "amsgrad": False, "lr_decay": 1.0, "lr_end": None}

    def validate(self) -> None:
        super().validate()
        self.require(self.hp["lr"] > 0, "lr", "must be > 0")
        self.require(self.hp["eps"] > 0, "eps", "must be > 0")
        self.require(self.hp["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        self.require_betas()

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        return {"adam": adam_init(system.theta), "iteration": 0}

    def update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
               names: list[str]) -> dict[str, torch.Tensor]:
        hp = self.hp
        g = ascent_direction(system, M, names)  # −∇J: Adam with maximize, no negation pass
        adam_step({n: system.theta[n] for n in names}, g, state["adam"], lr=self.lr(state),
                  betas=tuple(hp["betas"]), eps=hp["eps"], weight_decay=hp["weight_decay"],
                  decoupled=hp["decoupled"], amsgrad=hp["amsgrad"], maximize=True)
        return g


@register_solver
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 0.01, torch's default)."""

    name = "adamw"
    doc = "AdamW: Adam with decoupled weight decay"
    defaults = {**Adam.defaults, "weight_decay": 0.01, "decoupled": True}
