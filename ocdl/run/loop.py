"""The run loop: epochs of solver steps, evaluation, logging, checkpoints, NaN and Ctrl-C handling.

The loop knows three things only through their interfaces: the :class:`ocdl.system.System`
(predict, state_dict, controls), the solver (``step``/``end_epoch`` on a state dict it never
looks into) and the feeders (``len``, ``epoch(e, start_batch)``). Per epoch ``e`` (1-based):

    for each batch b:  state, metrics = solver.step(system, state, x_b, y_b)
    state = solver.end_epoch(system, state, e, π); evaluate on valid and test (every
        ``eval_every``-th epoch and the last)
    write the epoch record to log.jsonl; checkpoint last.pt (and best.pt if valid improved)

π is the fraction of the run done (:meth:`Loop.progress`), for the solvers' schedules that fit
the run's length (``lr_end``, ``alpha_end``); it is logged as the epoch record's ``progress``.

Position: the loop is at (epoch, batch) = "the next batch to run is ``batch`` of ``epoch``"; a
checkpoint stores it with everything else a bit-identical continuation needs (controls and
buffers, solver state, RNG states, epoch metric sums, best so far, history, log size).

Ctrl-C (SIGINT) sets a flag; the loop stops at the next consistent point (after the current
step), syncs the log, saves ``last.pt`` and raises :class:`RunInterrupted` (exit code 130). A
second Ctrl-C stops at once and keeps the previous checkpoint. In a data-parallel run the flag
rides along the next step's all-reduce, so every rank stops after the same step. A NaN/inf
loss, found at the next sync point, raises :class:`ocdl.errors.DivergenceError` and leaves the
checkpoints untouched.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import DivergenceError, RunInterrupted
from .checkpoint import FORMAT, copy_atomic, rng_state, save_atomic, set_rng_state
from .options import RunOptions
from .metrics import EpochMeans, JsonlLog, MetricBuffer, evaluate, nonzero_by_stage
from .results import improved_best
from .events import Callbacks
from .progress import Reporter


def resume_hint(run_dir: Path) -> str:
    return f"ocdl solve --resume {run_dir}"


class Loop:
    """One run of ``solver`` on ``system`` over ``feeders`` (see the module docstring)."""

    def __init__(self, *, system: Any, solver: Any, state: dict[str, Any], feeders: Any,
                 options: RunOptions, run_dir: Path, config: dict[str, Any], log: JsonlLog,
                 reporter: Reporter | None = None, checkpoint: dict[str, Any] | None = None,
                 label: str = "", callbacks: Callbacks | None = None, writer: bool = True):
        self.system = system
        # False on a data-parallel run's ranks other than 0: they train and evaluate in step
        # with rank 0 but write no checkpoint (rank 0 writes the run folder)
        self.writer = writer
        self.solver = solver
        self.state = state
        self.feeders = feeders
        self.options = options
        self.run_dir = Path(run_dir)
        self.config = config
        self.log = log
        self.reporter = reporter or Reporter()
        self.callbacks = callbacks or Callbacks()
        self.label = label
        self.buffer = MetricBuffer(system.device)
        ck = checkpoint or {}
        self.epoch: int = ck.get("epoch", 1)
        self.batch: int = ck.get("batch", 0)
        self.iteration: int = ck.get("iteration", 0)
        m = ck.get("epoch_means", {})
        self.means = EpochMeans(m.get("sums"), m.get("counts"))
        self.best: dict[str, Any] = dict(ck.get("best", {}))
        self.history: list[dict[str, Any]] = list(ck.get("history", []))
        self.elapsed_base: float = float(ck.get("elapsed", 0.0))
        self.epoch_start: float = float(ck.get("epoch_start", 0.0))
        self.last_checkpoint: tuple[int, int] | None = (
            (self.epoch, self.batch) if checkpoint else None)
        self._rng = ck.get("rng")
        self._t0 = time.perf_counter()
        self._stop = False
        self._time_up = False
        self._unsafe = False
        self._old_handler: Any = None
        self.final_status = "running"

    # ------------------------------------------------------------------ time
    @property
    def stopped_by_time_limit(self) -> bool:
        """Did ``options.time_limit`` end the run before ``options.epochs``?"""
        return self._time_up

    def elapsed(self) -> float:
        return self.elapsed_base + (time.perf_counter() - self._t0)

    def progress(self, epoch: int) -> float:
        """π ∈ [0, 1], the fraction of the run done after ``epoch``: the larger of
        epoch / ``epochs`` and, with a time limit, elapsed time / ``time_limit``."""
        p = epoch / self.options.epochs
        if self.options.time_limit:
            p = max(p, self.elapsed() / self.options.time_limit)
        return min(1.0, p)

    # ------------------------------------------------------------------ main
    def run(self) -> str:
        """Run up to ``options.epochs``; returns ``completed`` (raises on interrupt/divergence)."""
        self._install_sigint()
        try:
            if self._rng is not None:
                set_rng_state(self._rng)
            self._t0 = time.perf_counter()
            self.reporter.start(self.options.epochs, len(self.feeders.train), self.label)
            try:
                while self.epoch <= self.options.epochs and not self._time_up:
                    self._run_epoch()
            except KeyboardInterrupt:
                self._interrupt(consistent=not self._unsafe)
            self.final_status = "completed"
            return "completed"
        finally:
            self._restore_sigint()
            self.reporter.close()
            self.callbacks.close()

    def _emit(self, kind: str, record: dict[str, Any] | None = None, **kw: Any) -> None:
        """Tell the callbacks (:mod:`ocdl.run.events`)."""
        self.callbacks.emit(kind, epoch=self.epoch, iteration=self.iteration,
                            run_dir=self.run_dir, record=record, **kw)

    def _run_epoch(self) -> None:
        e = self.epoch
        feeder = self.feeders.train
        n = len(feeder)
        self.reporter.epoch_start(e, self.batch)
        batches = iter(feeder.epoch(e, start_batch=self.batch))
        while True:
            if self._stopping():
                self._interrupt(consistent=True)
            try:
                x, y = next(batches)
            except StopIteration:
                break
            self._unsafe = True
            self.state, metrics = self.solver.step(self.system, self.state, x, y)
            self.batch += 1
            self.iteration += 1
            self.buffer.push(e, self.batch - 1, self.iteration, metrics)
            self._unsafe = False
            self.reporter.advance()
            if len(self.buffer) >= self.options.log_every:
                self._sync()
            every = self.options.checkpoint_every
            if every and self.iteration % every == 0 and self.batch < n:
                self._sync()
                self._save()
        self._end_epoch(e, n)

    def _end_epoch(self, e: int, n: int) -> None:
        self._sync()
        self._unsafe = True
        progress = self.progress(e)
        self.state = self.solver.end_epoch(self.system, self.state, e, progress)
        self._time_up = e < self.options.epochs and self._out_of_time()
        t_eval = time.perf_counter()
        results: dict[str, Any] = {"valid": None, "test": None}
        if e % self.options.eval_every == 0 or e == self.options.epochs or self._time_up:
            results = {"valid": evaluate(self.system, getattr(self.feeders, "valid", None), e),
                       "test": evaluate(self.system, getattr(self.feeders, "test", None), e)}
        record: dict[str, Any] = {"type": "epoch", "epoch": e, "iters": self.iteration,
                                  "progress": progress}
        record.update(self.means.means())
        record.update(nonzero_by_stage(self.system))
        for split, r in results.items():
            if r is None:
                continue
            if r["loss"] is None:
                self._diverge({"epoch": e, "batch": n - 1, "iter": self.iteration,
                               "key": f"the {split} loss", "value": "nan/inf",
                               "where": f"the evaluation after epoch {e}"}, n)
            record[f"{split}_loss"] = r["loss"]
            record[f"{split}_acc"] = r["acc"]
        if any(r is not None for r in results.values()):
            self._emit("evaluation", {k: v for k, v in record.items()
                                      if k.startswith(("valid_", "test_"))})
        now = self.elapsed()
        record["eval_time"] = time.perf_counter() - t_eval
        record["epoch_time"] = now - self.epoch_start
        record["time"] = now
        # wall time without the evaluations: the axis on which solvers are compared
        prev = self.history[-1].get("train_time", 0.0) if self.history else 0.0
        record["train_time"] = prev + record["epoch_time"] - record["eval_time"]
        self.log.write([record])
        if self._time_up:
            self.log.write([{"type": "event", "event": "time_limit", "epoch": e,
                             "time": now, "time_limit": self.options.time_limit}])
        self.history.append(record)
        improved = self._update_best(record)
        self.epoch, self.batch = e + 1, 0
        self.means = EpochMeans()
        self.epoch_start = now
        self._save(best=improved)
        self._unsafe = False
        self.reporter.epoch_end(record)
        self.callbacks.emit("epoch_end", epoch=e, iteration=self.iteration,
                            run_dir=self.run_dir, record=record)
        if self._time_up:
            self.reporter.message(f"time limit: stopped after epoch {e} ({now:.0f} s of "
                                  f"run.time_limit={self.options.time_limit:g} s)")

    def _out_of_time(self) -> bool:
        """Would one more epoch and its evaluation end past ``options.time_limit``? Judged by
        this epoch's training time and the slowest evaluation so far (counted twice: one may
        be due now and one after the next epoch)."""
        limit = self.options.time_limit
        if not limit:
            return False
        now = self.elapsed()
        t_eval = max((r.get("eval_time", 0.0) for r in self.history), default=0.0)
        return now + (now - self.epoch_start) + 2 * t_eval > limit

    def _update_best(self, record: dict[str, Any]) -> bool:
        """Best epoch by valid accuracy (by test accuracy when there is no valid split)."""
        new = improved_best(self.best, record)
        if new is None:
            return False
        self.best = new
        return True

    # ------------------------------------------------------------------ sync, save
    def _sync(self) -> None:
        res = self.buffer.sync()
        if not res.records:
            return
        records = res.records
        if res.bad is not None:
            cut = next(i for i, r in enumerate(records) if r["iter"] == res.bad["iter"])
            records = records[:cut + 1]
        self.log.write(records)
        self.means.add(records)
        self.reporter.synced(records[-1])
        self._emit("iterations", records[-1], records=records)
        if res.bad is not None:
            self._diverge(res.bad, len(self.feeders.train))

    def _payload(self) -> dict[str, Any]:
        self.log.sync()
        return {"format": FORMAT, "system": self.system.state_dict(),
                "solver_state": self.state, "solver": self.config["solver"]["name"],
                "epoch": self.epoch, "batch": self.batch, "iteration": self.iteration,
                "epoch_means": self.means.state(), "elapsed": self.elapsed(),
                "epoch_start": self.epoch_start, "best": dict(self.best),
                "history": list(self.history), "log_offset": self.log.offset,
                "rng": rng_state(), "config": self.config}

    def _save(self, best: bool = False) -> None:
        last = self.run_dir / "last.pt"
        if not self.writer:
            self.last_checkpoint = (self.epoch, self.batch)
            return
        save_atomic(self._payload(), last)
        if best:
            copy_atomic(last, self.run_dir / "best.pt")
        self.last_checkpoint = (self.epoch, self.batch)
        self._emit("checkpoint", {"path": str(last), "best": best, "epoch": self.epoch,
                                  "batch": self.batch})

    def _kept(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint was written yet"
        e, b = self.last_checkpoint
        at = f"end of epoch {e - 1}" if b == 0 else f"epoch {e}, batch {b}"
        return f"the last good checkpoint {self.run_dir / 'last.pt'} ({at}) is kept"

    # ------------------------------------------------------------------ stops
    def _diverge(self, bad: dict[str, Any], n: int) -> None:
        where = bad.pop("where", None) or (f"epoch {bad['epoch']}, iteration "
                                           f"{bad['batch'] + 1} of {n} (iteration "
                                           f"{bad['iter']} of the run)")
        what = bad["key"]
        msg = (f"diverged: {what} became {bad['value']} at {where}; {self._kept()}; "
               "try smaller steps or stronger damping in the solver settings (--set …)")
        self.log.write([{"type": "event", "event": "diverged", **bad}])
        self.final_status = "diverged"
        self._emit("divergence", dict(bad))
        raise DivergenceError(msg)

    def _interrupt(self, consistent: bool) -> None:
        self.final_status = "interrupted"
        n = len(self.feeders.train)
        if consistent:
            self._unsafe = True
            self._sync()
            self._save()
            e, b = self.epoch, self.batch
            at = (f"epoch {e}, after batch {b} of {n}" if b else
                  f"end of epoch {e - 1}" if e > 1 else "the start")
            msg = (f"interrupted at {at}; checkpoint saved to {self.run_dir / 'last.pt'}; "
                   f"resume with: {resume_hint(self.run_dir)}")
        else:
            msg = (f"interrupted during epoch {self.epoch}; {self._kept()}")
            if self.last_checkpoint is not None:
                msg += f"; resume with: {resume_hint(self.run_dir)}"
        self.log.write([{"type": "event", "event": "interrupted", "epoch": self.epoch,
                         "batch": self.batch}])
        raise RunInterrupted(msg)

    def _on_sigint(self, signum, frame) -> None:
        dp = self.system.data_parallel
        if dp is not None:  # every rank stops after the same step (torchrun passes Ctrl-C on,
            dp.request_stop()  # so a rank may see it twice: never stop at once)
        elif self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def _stopping(self) -> bool:
        """Stop before the next batch? On one process once Ctrl-C came; in a data-parallel run
        once any rank's Ctrl-C has ridden along a step's all-reduce (read after every step on
        the CPU, every ``run.log_every`` steps on a GPU, where reading it syncs)."""
        dp = self.system.data_parallel
        if dp is None:
            return self._stop
        return dp.stop_agreed(read=self.system.device.type == "cpu"
                              or self.iteration % self.options.log_every == 0)

    def _install_sigint(self) -> None:
        if threading.current_thread() is threading.main_thread():
            try:
                self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
            except (ValueError, OSError):  # pragma: no cover
                self._old_handler = None

    def _restore_sigint(self) -> None:
        if self._old_handler is not None:
            try:
                signal.signal(signal.SIGINT, self._old_handler)
            except (ValueError, OSError):  # pragma: no cover
                pass
            self._old_handler = None
