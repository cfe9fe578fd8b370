"""Schedules: how a positive quantity q (a learning rate's scale, 1 − α of a running average)
moves from epoch to epoch, over the run's epochs or its time.

The run loop calls ``end_epoch(system, state, epoch, progress)`` after every epoch with π, the
fraction of the run done: the larger of epochs done / ``epochs`` and elapsed / ``run.time_limit``.
After an epoch, with q₀ the value at the start and q the current one:

* :class:`Constant`: q stays;
* :class:`PerEpoch` (d): q ← d·q, i.e. q₀·d^e after e epochs (exponential decay per epoch, as in
  BinaryConnect's code and Li & Hao's 1−α ← 0.95(1−α));
* :class:`ToEnd` (r): q = q₀·r^π, an exponential that reaches r·q₀ at the run's end however many
  epochs it has: with a fixed number of epochs E this is d = r^(1/E); under a time limit it adapts
  to the speed of the device (and so depends on it). π is recomputed at every epoch, not
  accumulated: a run resumed with more ``--epochs`` re-plans;
* :func:`cubic_weight`: the weight (1 − τ)³ of the gradual-pruning anneal (Zhu & Gupta, 2017),
  τ = (π − π₀)/(π₁ − π₀) clipped to [0, 1] (used by :mod:`ocdl.solvers.sparsity_target`).

:class:`LrSchedule` is the part (settings ``decay``, ``end``) that schedules every learning rate
of a solver: in epoch e (1-based) it steps with lr·d^(e−1), or lr·r^π after an epoch ending π;
the factor lives in the state as ``lr_scale``, so a resumed run continues the schedule.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SolverError
from .settings import Part, Require, fraction_or_null


def progress_of(progress: float | None, what: str, instead: str) -> float:
    """π = ``progress`` clipped to [0, 1], for ``what`` (e.g. "solver 'emsa' setting 'lr_end'")
    that schedules by it; a :class:`SolverError` naming ``instead``, the other way, when the
    caller gave no progress."""
    if progress is None:
        raise SolverError(f"{what} schedules by the run's progress: call end_epoch(system, "
                          "state, epoch, progress=π) with π the fraction of the run done (ocdl "
                          f"solve and the API's run loop pass it), or {instead}")
    return min(1.0, max(0.0, float(progress)))


class Schedule:
    """q after an epoch, from the current q, its start q₀ and the run's progress π."""

    def after_epoch(self, q: float, q0: float, progress: float | None) -> float:
        raise NotImplementedError


class Constant(Schedule):
    """q stays."""

    def after_epoch(self, q: float, q0: float, progress: float | None) -> float:
        return q


class PerEpoch(Schedule):
    """q ← d·q after every epoch."""

    def __init__(self, d: float):
        self.d = d

    def after_epoch(self, q: float, q0: float, progress: float | None) -> float:
        return q * self.d


class ToEnd(Schedule):
    """q = q₀·r^π after an epoch that ends the fraction π of the run; ``solver`` and ``key`` name
    the setting of r for the error of a call without π."""

    def __init__(self, r: float, solver: str, key: str):
        self.r, self.solver, self.key = float(r), solver, key

    def after_epoch(self, q: float, q0: float, progress: float | None) -> float:
        return q0 * self.r ** progress_of(progress, f"solver '{self.solver}' setting '{self.key}'",
                                          f"use the per-epoch decay instead of '{self.key}'")


def exponential(decay: float, end: float | None, solver: str, end_key: str) -> Schedule:
    """:class:`ToEnd` (r = ``end``, the setting ``end_key``) when ``end`` is set, else
    :class:`PerEpoch` (d = ``decay``; d = 1 keeps q, and still records it)."""
    return ToEnd(end, solver, end_key) if end is not None else PerEpoch(decay)


def cubic_weight(tau: float) -> float:
    """(1 − τ)³ with τ clipped to [0, 1]: 1 at the anneal's start, 0 from its end on."""
    return (1.0 - min(1.0, max(0.0, tau))) ** 3


class LrSchedule(Part):
    """Settings ``decay`` (d, flat ``lr_decay``) and ``end`` (r, flat ``lr_end``, null: use d) of
    every learning rate of a solver; :meth:`after_epoch` gives the new ``lr_scale``."""

    DEFAULTS = {"decay": 1.0, "end": None}
    DOCS = {"decay": "every learning rate × decay after each epoch",
            "end": "if set, every rate × end^π instead, π the fraction of the run done"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        require(0 < s["decay"] <= 1, "decay", "must be in (0, 1]")
        fraction_or_null(s, require, "end")

    def __init__(self, s: Mapping[str, Any], solver: str, end_key: str = "lr_end"):
        self.schedule = exponential(s["decay"], s["end"], solver, end_key)

    def after_epoch(self, state: dict[str, Any], progress: float | None) -> None:
        """``state["lr_scale"]``: d^(epochs done), or r^π."""
        state["lr_scale"] = self.schedule.after_epoch(state.get("lr_scale", 1.0), 1.0, progress)
