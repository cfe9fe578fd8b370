"""The solver protocol and registry (the *how*).

A solver optimises the controls θ of a :class:`ocdl.system.System`. It never sees the dataset or
the model spec, only the System and batches (x, y):

    solver = make_solver("emsa-ternary", overrides={"rho": 0.3})
    state = solver.init(system)                 # raises SolverError for sets it cannot handle
    state, metrics = solver.step(system, state, x, y)   # updates system.theta in place
    state = solver.end_epoch(system, state, epoch, progress)  # schedules (α decay, lr decay)

``state`` is a plain dict of tensors and Python scalars (so ``torch.save`` checkpoints it);
``metrics`` is a dict of 0-d tensors kept on the device (the run loop decides when to sync).

Hyperparameters are checked once, in the constructor: an unknown name, a value of the wrong type
(each setting's type is that of its default; an int is accepted for a float) or one outside its
range (:meth:`Solver.validate`) is a :class:`SolverError`.

Learning-rate schedule: a solver whose ``defaults`` hold ``lr_decay`` multiplies every learning
rate it uses (``lr``, ``lr_real``, ``inner_lr``) by ``lr_decay`` at the end of each epoch, i.e. in
epoch e (1-based) it steps with lr·d^(e−1) (exponential decay, as in BinaryConnect's code); the
factor d^(epochs done) lives in the state as ``lr_scale``, so a resumed run continues the schedule.
d = 1 (the default) keeps the rates constant.

The same decay can instead be fitted to the run's length: with ``lr_end`` = r set (a number in
(0, 1]; null by default), after an epoch that ends a fraction π ∈ [0, 1] of the run the rates are
lr·r^π, so they reach r·lr at the run's end however many epochs it has. π is the ``progress``
that the run loop passes to :meth:`Solver.end_epoch`: the larger of epochs done / ``epochs`` and
elapsed / ``run.time_limit``. With a fixed number of epochs E this is lr_decay = r^(1/E); under a
time limit it adapts to the speed of the device (and so depends on it). ``lr_end`` replaces
``lr_decay`` when set. π is recomputed at every epoch, not accumulated: a run resumed with more
``--epochs`` (or a longer time limit) re-plans, and its rates go back up to where the longer run
would have them at that epoch. The optional setting ``sets`` (when a
solver declares it) narrows the control-set kinds the solver accepts, e.g. ``[binary, real]`` for
the ``emsa-binary`` preset, so that a preset meant for binary networks refuses a ternary one.
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import torch

from ..errors import ControlSetError, SolverError, did_you_mean
from ..system import System

SOLVERS: dict[str, type["Solver"]] = {}


def register_solver(cls: type["Solver"]) -> type["Solver"]:
    """Class decorator: add a solver class to the registry under ``cls.name``."""
    SOLVERS[cls.name] = cls
    return cls


def _yaml_word(v: Any) -> str:
    """A setting's value as a user writes it in YAML or ``--set`` (true/false, not True/False)."""
    return str(v).lower() if isinstance(v, bool) else str(v)


class Solver(abc.ABC):
    """Base class. Subclasses declare ``name``, ``defaults`` (hyperparameter → default value) and
    ``supports`` (control-set kinds they can optimise), and implement ``init`` and ``step``.

    ``choices`` maps a string setting to its allowed values; ``doc`` is a one-line description
    shown by :func:`ocdl.solvers.list_solvers`.
    """

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    supports: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, **hparams: Any):
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            k = sorted(unknown)[0]
            raise SolverError(f"solver '{self.name}' has no setting '{k}'"
                              f"{did_you_mean(k, self.defaults)}; settings: "
                              f"{', '.join(sorted(self.defaults))}")
        self.hp: dict[str, Any] = {**self.defaults, **hparams}
        for k in hparams:
            self.hp[k] = self._typed(k, hparams[k])
        self.validate()

    # ------------------------------------------------------------------ settings
    def _typed(self, key: str, v: Any) -> Any:
        """Check ``v`` against the type of the default of ``key`` (and ``choices``)."""
        d = self.defaults[key]
        where = f"solver '{self.name}' setting '{key}'"
        if key in self.choices:
            if v not in self.choices[key]:
                names = [_yaml_word(c) for c in self.choices[key]]
                raise SolverError(f"{where} must be one of {', '.join(names)}, got "
                                  f"{_yaml_word(v) if isinstance(v, bool) else repr(v)}"
                                  f"{did_you_mean(str(v), names)}")
            return v
        if isinstance(d, bool):
            if not isinstance(v, bool):
                raise SolverError(f"{where} must be true or false, got {v!r}")
            return v
        if isinstance(d, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SolverError(f"{where} must be a finite number, got {v!r}")
            return float(v)
        if isinstance(d, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SolverError(f"{where} must be an integer, got {v!r}")
            return v
        if isinstance(d, str) and not isinstance(v, str):
            raise SolverError(f"{where} must be a string, got {v!r}")
        if isinstance(d, (list, tuple)) and not isinstance(v, (list, tuple)):
            raise SolverError(f"{where} must be a list, got {v!r}")
        return v

    def require(self, cond: bool, key: str, what: str) -> None:
        """Raise a :class:`SolverError` naming setting ``key`` unless ``cond``."""
        if not cond:
            raise SolverError(f"solver '{self.name}' setting '{key}' {what}, got "
                              f"{self.hp[key]!r}")

    def require_betas(self) -> None:
        """Check the Adam setting ``betas``: two numbers in [0, 1)."""
        b = self.hp["betas"]
        self.require(len(b) == 2 and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b),
                     "betas", "must be two numbers in [0, 1)")

    def require_fraction_or_null(self, key: str) -> None:
        """Check a setting that is null or a number in (0, 1] (the ``*_end`` schedules)."""
        v = self.hp[key]
        self.require(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                   and 0 < v <= 1), key, "must be a number in (0, 1] or null")

    def validate(self) -> None:
        """Range checks of the settings (subclasses extend; raise via :meth:`require`)."""
        if "lr_decay" in self.defaults:
            self.require(0 < self.hp["lr_decay"] <= 1, "lr_decay", "must be in (0, 1]")
            self.require_fraction_or_null("lr_end")
        if "sets" in self.defaults and self.hp["sets"] is not None:
            sets = self.hp["sets"]
            ok = isinstance(sets, (list, tuple)) and all(s in self.supports for s in sets)
            self.require(ok and len(sets) > 0, "sets",
                         f"must be a list of set kinds among {', '.join(self.supports)}")

    # ------------------------------------------------------------------ systems
    def accepted_kinds(self) -> tuple[str, ...]:
        """Control-set kinds this solver, with these settings, will optimise."""
        sets = self.hp.get("sets")
        return tuple(sets) if sets else self.supports

    def check_system(self, system: System) -> None:
        """Raise :class:`ControlSetError` if a control's set is not one this solver handles."""
        kinds = self.accepted_kinds()
        for c in system.controls:
            if c.cset.kind not in kinds:
                raise ControlSetError(f"solver '{self.name}' cannot optimise control {c.name} "
                                      f"with a {c.cset.describe()} set (it handles: "
                                      f"{', '.join(kinds)}); choose another solver or set")

    @abc.abstractmethod
    def init(self, system: System) -> dict[str, Any]:
        """Check the system and return the initial solver state."""

    def amp_unsafe(self, system: System) -> str | None:
        """Why this solver, as set, cannot run ``system`` with a bfloat16 forward pass
        (``run.amp``), or None when it can: a solver that only reads M = −∇_θ J from the
        reverse pass can (the default); one that evaluates Hamiltonians or feasibility errors,
        differences of near-equal states, cannot."""
        return None

    @abc.abstractmethod
    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """One iteration on a batch; updates ``system.theta`` in place."""

    def end_epoch(self, system: System, state: dict[str, Any], epoch: int,
                  progress: float | None = None) -> dict[str, Any]:
        """Per-epoch schedule hook, after epoch ``epoch`` (1-based) which ends the fraction
        ``progress`` π of the run: lr_scale ← lr_decay · lr_scale, or lr_end^π when ``lr_end``
        is set (solvers with ``lr_decay``)."""
        if "lr_decay" in self.defaults:
            if self.hp.get("lr_end") is not None:
                state["lr_scale"] = self.at_progress("lr_end", progress)
            else:
                state["lr_scale"] = state.get("lr_scale", 1.0) * self.hp["lr_decay"]
        return state

    def at_progress(self, key: str, progress: float | None) -> float:
        """hp[key]^π with π = ``progress`` clipped to [0, 1]: an exponential schedule that
        reaches hp[key] at the end of the run."""
        return float(self.hp[key]) ** self.progress_of(
            key, progress, f"use the per-epoch decay instead of '{key}'")

    def progress_of(self, key: str, progress: float | None, instead: str) -> float:
        """π = ``progress`` clipped to [0, 1], for the setting ``key`` that schedules by it
        (raises :class:`SolverError` naming ``key`` and, as the other way, ``instead`` when the
        caller gave no progress)."""
        if progress is None:
            raise SolverError(f"solver '{self.name}' setting '{key}' schedules by the run's "
                              "progress: call end_epoch(system, state, epoch, progress=π) with "
                              "π the fraction of the run done (ocdl solve and the API's run "
                              f"loop pass it), or {instead}")
        return min(1.0, max(0.0, float(progress)))

    def lr(self, state: dict[str, Any], key: str = "lr") -> float:
        """The learning rate ``key`` of this epoch: hp[key] · lr_scale (lr_decay^(epochs done),
        or lr_end^π)."""
        return self.hp[key] * state.get("lr_scale", 1.0)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.hp.items() if v != self.defaults.get(k)}
        inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({inner})"
