"""What a run tells its callbacks: the events of the loop, for a user's own tracker.

``ocdl.api.solve(..., callbacks=[f, …])`` calls each ``f(event)`` with an :class:`Event`:

==============  ==========================================================================
``kind``        when, and what ``event.record`` holds
==============  ==========================================================================
``iterations``  at each metric sync (every ``run.log_every`` iterations, and at an epoch's
                end): the per-iteration records since the last sync, in ``event.records``
                (``loss``, ``J``, ``rho``, ``flips`` … of each iteration); ``record`` is the
                last of them
``evaluation``  after the valid and test splits were evaluated at an epoch's end:
                ``valid_loss``, ``valid_acc``, ``test_loss``, ``test_acc`` (those evaluated)
``epoch_end``   after the epoch's record was written to ``log.jsonl``: the whole record
                (loss, accuracies, ``nonzero`` and ``nonzero/<stage>``, ``flips``, ``rho``,
                ``dH``, ``dead``, times …: what ``ocdl solve`` prints a line of)
``checkpoint``  after ``last.pt`` (and ``best.pt`` when ``best``) was written: ``path``,
                ``best``, and the position ``epoch``/``batch`` the checkpoint resumes from
``divergence``  when the loss or an evaluation became NaN/inf, before the run raises
                :class:`ocdl.errors.DivergenceError`: ``key``, ``value``, ``epoch``, ``iter``
==============  ==========================================================================

Every event also carries ``epoch``, ``iteration`` (of the run) and ``run_dir``. Callbacks run in
the loop's thread, in the order given; a callback that raises ends the run with
:class:`ocdl.errors.CallbackError` naming it and the event (the checkpoints written before are
kept, so ``ocdl solve --resume`` continues). Callbacks are not part of the run's record: a
resumed run gets only the ones passed to it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CallbackError

KINDS = ("iterations", "evaluation", "epoch_end", "checkpoint", "divergence")


@dataclass(frozen=True)
class Event:
    """One event of a run (see the module docstring for each ``kind``)."""

    kind: str
    epoch: int
    iteration: int
    run_dir: Path
    record: dict[str, Any] = field(default_factory=dict)
    records: Sequence[dict[str, Any]] = ()


Callback = Callable[[Event], Any]


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or type(f).__qualname__


class Callbacks:
    """The callbacks of a run, called in order with each :class:`Event`."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)
        for f in self.callbacks:
            if not callable(f):
                raise CallbackError(f"a callback must be callable with one Event, got "
                                    f"{type(f).__name__} ({f!r:.60})")

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def emit(self, kind: str, *, epoch: int, iteration: int, run_dir: Path,
             record: dict[str, Any] | None = None,
             records: Sequence[dict[str, Any]] = ()) -> None:
        if not self.callbacks:
            return
        event = Event(kind, epoch, iteration, Path(run_dir), dict(record or {}), records)
        for f in self.callbacks:
            try:
                f(event)
            except CallbackError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of user code ends the run
                raise CallbackError(
                    f"callback {_name(f)} failed on the '{kind}' event at epoch {epoch}, "
                    f"iteration {iteration}: {type(e).__name__}: {str(e)[:200]}; the run's "
                    f"checkpoints in {run_dir} are kept (ocdl solve --resume {run_dir} "
                    "continues it)") from e

    def close(self) -> None:
        """Close the callbacks that have a ``close()`` (e.g. a TensorBoard writer)."""
        for f in self.callbacks:
            close = getattr(f, "close", None)
            if callable(close):
                close()
