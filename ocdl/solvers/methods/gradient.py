"""Gradient baselines on the same compiled System: SGD and Adam / AdamW.

The gradient is g = ∇J = −M from the reverse pass (:meth:`System.costates`), plus λ sign(θ), the
subgradient of an l1 cost λ‖θ‖₁ on a control; box controls are projected after each step. The
updates are torch's own functional optimisers (fused Adam, foreach SGD), so a step matches
``torch.optim.SGD`` / ``Adam`` / ``AdamW`` on the same gradients exactly. Their settings are one
block, ``optimizer``, and the learning-rate schedule ``lr_schedule``. Finite control sets are
refused: use BinaryConnect, TWN, Bop or E-MSA for those.

Metrics: ``loss``, ``J`` (before the step) and ``grad_norm`` (‖∇J‖₂ over all controls).
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import torch

from ...system import System
from ..base import Solver, register_solver
from ..first_order import (adam_init, adam_step, ascent_direction, descent_grads, project_, sgd_init,
                     sgd_step)
from ..real_controls import AdamSettings
from ..schedules import LrSchedule
from ..settings import Part, Require, positive


def grad_norm(g: dict[str, torch.Tensor]) -> torch.Tensor:
    """‖g‖₂ over all tensors (one foreach reduction)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(g.values()), 2)))


class SgdSettings(Part):
    """``lr``, ``momentum``, ``dampening``, ``nesterov``, ``weight_decay`` (torch.optim.SGD's)."""

    DEFAULTS = {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                "weight_decay": 0.0}
    DOCS = {"lr": "SGD's learning rate", "momentum": "SGD's heavy-ball momentum",
            "dampening": "SGD's momentum dampening", "nesterov": "Nesterov momentum",
            "weight_decay": "L2 weight decay"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        positive(s, require, "lr")
        require(s["momentum"] >= 0, "momentum", "must be ≥ 0")
        require(s["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        require(not s["nesterov"] or (s["momentum"] > 0 and s["dampening"] == 0), "nesterov",
                f"needs {require.name('momentum')} > 0 and {require.name('dampening')} 0")


class AdamOptimizer(AdamSettings):
    """Adam's settings and ``decoupled`` (AdamW) and ``amsgrad``."""

    DEFAULTS = {**AdamSettings.DEFAULTS, "decoupled": False, "amsgrad": False}
    DOCS = {**AdamSettings.DOCS, "lr": "Adam's learning rate",
            "decoupled": "decoupled weight decay (AdamW)", "amsgrad": "the AMSGrad variant"}


def _flat(block: type[Part]) -> dict[str, str]:
    return {k: f"optimizer.{k}" for k in block.DEFAULTS} | {"lr_decay": "lr_schedule.decay",
                                                          "lr_end": "lr_schedule.end"}


class FirstOrder(Solver):
    """One step of a first-order method on every control: forward pass, reverse pass (M = −∇J),
    :meth:`update` (the method's own rule), projection onto box sets."""

    supports = ("real", "box")

    def init(self, system: System) -> dict[str, Any]:
        self.check_system(system)
        return {**self.moments(system), "iteration": 0}

    @abc.abstractmethod
    def moments(self, system: System) -> dict[str, Any]:
        """The optimiser's state of the controls (momentum buffers, Adam moments)."""

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
    parts = {"optimizer": SgdSettings, "lr_schedule": LrSchedule}
    aliases = _flat(SgdSettings)

    def moments(self, system: System) -> dict[str, Any]:
        return {"sgd": sgd_init(system.theta)}

    def update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
               names: list[str]) -> dict[str, torch.Tensor]:
        s = self.settings["optimizer"]
        g = descent_grads(system, M, names)
        sgd_step({n: system.theta[n] for n in names}, g, state["sgd"],
                 lr=self.lr(state, "optimizer.lr"), momentum=s["momentum"],
                 dampening=s["dampening"], nesterov=s["nesterov"],
                 weight_decay=s["weight_decay"])
        return g


@register_solver
class Adam(FirstOrder):
    """Adam (Kingma & Ba 2015) on ∇J; ``decoupled: true`` gives AdamW (Loshchilov & Hutter)."""

    name = "adam"
    doc = "Adam / AdamW on ∇J (torch's fused kernel)"
    parts = {"optimizer": AdamOptimizer, "lr_schedule": LrSchedule}
    aliases = _flat(AdamOptimizer)

    def moments(self, system: System) -> dict[str, Any]:
        return {"adam": adam_init(system.theta)}

    def update(self, system: System, state: dict[str, Any], M: dict[str, torch.Tensor],
               names: list[str]) -> dict[str, torch.Tensor]:
        s = self.settings["optimizer"]
        g = ascent_direction(system, M, names)  # −∇J: Adam with maximize, no negation pass
        adam_step({n: system.theta[n] for n in names}, g, state["adam"],
                  lr=self.lr(state, "optimizer.lr"), betas=tuple(s["betas"]), eps=s["eps"],
                  weight_decay=s["weight_decay"], decoupled=s["decoupled"],
                  amsgrad=s["amsgrad"], maximize=True)
        return g


@register_solver
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 0.01, torch's default)."""

    name = "adamw"
    doc = "AdamW: Adam with decoupled weight decay"
    part_defaults = {"optimizer": {"weight_decay": 0.01, "decoupled": True}}
