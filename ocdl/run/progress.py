"""What a run shows while it runs: a rich progress bar (on a terminal) and one line per epoch.

``make_reporter(quiet)`` gives a silent reporter when ``quiet``; otherwise epoch lines on
stderr, plus a progress bar when stderr is a terminal.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


def _pct(v: Any) -> str:
    return "   -  " if v is None else f"{100 * v:6.2f}"


def epoch_line(r: dict[str, Any], total: int) -> str:
    """``epoch  3/10  loss 0.1234  valid 97.10%  test 96.80%  nonzero 12.3%  4.2 s``; with
    E-MSA's ``nonzero_target`` also the target the epoch steered to (the epoch's mean, which
    moves while ``nonzero_end`` anneals it) and the scale of λ (``target 1.95%  λ×2.31`` after
    the non-zero fraction), and where output units of discrete weights died (rows all zero)
    their fraction (``dead 0.36%``)."""
    parts = [f"epoch {r['epoch']:>3}/{total}"]
    if r.get("loss") is not None:
        parts.append(f"loss {r['loss']:.4f}")
    for split in ("valid", "test"):
        if r.get(f"{split}_acc") is not None:
            parts.append(f"{split} {_pct(r[f'{split}_acc']).strip()}%")
    if r.get("nonzero") is not None:
        parts.append(f"nonzero {100 * r['nonzero']:.2f}%")
    if r.get("nonzero/target") is not None:
        parts.append(f"target {100 * r['nonzero/target']:.2f}%")
    if r.get("lambda_scale") is not None:
        parts.append(f"λ×{r['lambda_scale']:.3g}")
    if r.get("dead"):
        parts.append(f"dead {100 * r['dead']:.2f}%")
    if r.get("epoch_time") is not None:
        parts.append(f"{r['epoch_time']:.1f} s")
    return "  ".join(parts)


class Reporter:
    """Silent base: the loop calls these hooks."""

    def start(self, total_epochs: int, batches: int, label: str = "") -> None: ...

    def epoch_start(self, epoch: int, start_batch: int) -> None: ...

    def advance(self) -> None: ...

    def synced(self, record: dict[str, Any]) -> None: ...

    def epoch_end(self, record: dict[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


#: seconds between two progress lines of :class:`LineReporter` (without a terminal)
PROGRESS_EVERY = 30.0


def progress_line(epoch: int, total: int, done: int, batches: int, rate: float,
                  loss: Any) -> str:
    """``epoch   3/10  batch 120/550  loss 0.1234  4.12 it/s  ETA 1:44``: ``rate`` in
    iterations per second, the ETA the epoch's remaining batches at that rate."""
    parts = [f"epoch {epoch:>3}/{total}", f"batch {done}/{batches}"]
    if isinstance(loss, float):
        parts.append(f"loss {loss:.4f}")
    if rate > 0:
        eta = round(max(batches - done, 0) / rate)
        parts += [f"{rate:.3g} it/s", f"ETA {eta // 60}:{eta % 60:02d}"]
    return "  ".join(parts)


class LineReporter(Reporter):
    """One line per epoch on a console (stderr by default), never wrapped at the console's
    width (a log file reads one line per epoch), and within an epoch a progress line (batch,
    loss, iterations per second, the epoch's ETA) at the metric syncs (every ``run.log_every``
    iterations), at most one every ``every`` seconds: a log of a long CPU epoch is not silent."""

    def __init__(self, console: Console | None = None, every: float | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.every = PROGRESS_EVERY if every is None else every
        self.total = self.batches = self.epoch = self.done = self.first = 0
        self.label = ""
        self.t0 = self.last_line = 0.0

    def start(self, total_epochs, batches, label=""):
        self.total = total_epochs
        self.batches = batches
        self.label = label

    def epoch_start(self, epoch, start_batch):
        self.epoch, self.done, self.first = epoch, start_batch, start_batch
        self.t0 = self.last_line = time.monotonic()

    def advance(self):
        self.done += 1

    def synced(self, record):
        now = time.monotonic()
        if now - self.last_line < self.every or self.done >= self.batches:
            return
        self.last_line = now
        rate = (self.done - self.first) / (now - self.t0) if now > self.t0 else 0.0
        line = progress_line(self.epoch, self.total, self.done, self.batches, rate,
                             record.get("loss", record.get("J")))
        self.message(f"{self.label}  {line}" if self.label else line)

    def epoch_end(self, record):
        self.last_line = time.monotonic()
        self.message(epoch_line(record, self.total))

    def message(self, text):
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


class BarReporter(LineReporter):
    """Epoch lines plus a live progress bar of the current epoch (batches, elapsed, loss); the
    lines go through the bar's own console (``self.console``), which prints them above it."""

    def __init__(self, console: Console | None = None):
        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, transient=True)
        self.task = None
        self.batches = 0
        self._started = False

    def start(self, total_epochs, batches, label=""):
        super().start(total_epochs, batches, label)
        self.batches = batches
        if not self._started:
            self.progress.start()
            self._started = True

    def epoch_start(self, epoch, start_batch):
        desc = f"{self.label} epoch {epoch}/{self.total}".strip()
        if self.task is None:
            self.task = self.progress.add_task(desc, total=self.batches, completed=start_batch,
                                               info="")
        else:
            self.progress.reset(self.task, total=self.batches, completed=start_batch,
                                description=desc, info="")

    def advance(self):
        if self.task is not None:
            self.progress.advance(self.task)

    def synced(self, record):
        if self.task is not None:
            loss = record.get("loss", record.get("J"))
            info = f"loss {loss:.4f}" if isinstance(loss, float) else ""
            self.progress.update(self.task, info=info)

    def close(self):
        if self._started:
            self.progress.stop()
            self._started = False


def make_reporter(quiet: bool | None = False, bar: bool | None = None) -> Reporter:
    """Silent if ``quiet``; else epoch lines, with a bar when stderr is a terminal (or ``bar``)."""
    if quiet:
        return Reporter()
    console = Console(file=sys.stderr, highlight=False)
    use_bar = console.is_terminal if bar is None else bar
    return BarReporter(console) if use_bar else LineReporter(console)
