"""The solver protocol and registry (the *how*).

A solver optimises the controls θ of a :class:`ocdl.system.System`. It never sees the dataset or
the model spec, only the System and batches (x, y):

    solver = make_solver("emsa-ternary", overrides={"rho": 0.3})
    state = solver.init(system)                 # raises SolverError for sets it cannot handle
    state, metrics = solver.step(system, state, x, y)   # updates system.theta in place
    state = solver.end_epoch(system, state, epoch)      # per-epoch schedules (e.g. α decay)

``state`` is a plain dict of tensors and Python scalars (so ``torch.save`` checkpoints it);
``metrics`` is a dict of 0-d tensors kept on the device (the run loop decides when to sync).
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch

from ..errors import SolverError, did_you_mean
from ..system import System

SOLVERS: dict[str, type["Solver"]] = {}


def register_solver(cls: type["Solver"]) -> type["Solver"]:
    """Class decorator: add a solver class to the registry under ``cls.name``."""
    SOLVERS[cls.name] = cls
    return cls


class Solver(abc.ABC):
    """Base class. Subclasses declare ``name``, ``defaults`` (hyperparameter → default value) and
    ``supports`` (control-set kinds they can optimise), and implement ``init`` and ``step``."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    supports: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **hparams: Any):
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            k = sorted(unknown)[0]
            raise SolverError(f"solver '{self.name}' has no setting '{k}'"
                              f"{did_you_mean(k, self.defaults)}; settings: "
                              f"{', '.join(sorted(self.defaults))}")
        self.hp: dict[str, Any] = {**self.defaults, **hparams}

    def check_system(self, system: System) -> None:
        """Raise :class:`SolverError` if a control's set is not one this solver handles."""
        for c in system.controls:
            if c.cset.kind not in self.supports:
                raise SolverError(f"solver '{self.name}' cannot optimise control {c.name} with a "
                                  f"{c.cset.describe()} set (it handles: "
                                  f"{', '.join(self.supports)}); choose another solver or set")

    @abc.abstractmethod
    def init(self, system: System) -> dict[str, Any]:
        """Check the system and return the initial solver state."""

    @abc.abstractmethod
    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """One iteration on a batch; updates ``system.theta`` in place."""

    def end_epoch(self, system: System, state: dict[str, Any], epoch: int) -> dict[str, Any]:
        """Per-epoch schedule hook (default: nothing)."""
        return state
