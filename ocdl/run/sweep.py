"""A sweep: one solver on one model over a grid of settings, one run folder per grid point.

A grid (:mod:`ocdl.run.grid`) has axes ``KEY=V1,V2,…``: ``seed`` (the run's seed, as
``--seed``) or any ``--set`` key (``rho``, ``lr``, ``data.limit``, ``run.eval_every``). Each of
its points runs in the folder ``DIR/<name>`` named by its values (``rho=0.5,seed=1``), one after
the other or ``jobs`` at a time in separate processes.

The sweep folder ``DIR`` holds ``sweep.yaml`` (what the sweep is: model, solver, grid, fixed
settings, epochs), the run folders, and the table and plots of :mod:`ocdl.run.tables` and
:mod:`ocdl.run.plots` (``compare.md``, ``compare.csv``, ``compare.json``, PNGs): one row per
point with the ``seed`` axis averaged (mean ± sd over seeds, as :func:`ocdl.run.compare.
run_compare` averages its seeds); ``compare.csv`` has one row per run.

Running the same sweep again resumes it: a point whose run folder has its ``summary.json``
(completed, or diverged) is skipped, an interrupted one continues from its last checkpoint
(:func:`ocdl.run.lifecycle.resume`), a missing one starts. A ``DIR`` made by another sweep (other
grid, model, solver, settings or epochs) is refused, and so is a point folder that holds a run
with other settings; how a sweep runs (device, ``jobs``) may change between calls.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OcdlError, RunInterrupted
from ..modelspec.model import ModelSpec
from . import lifecycle
from .grid import SEED, Point, grid_points, grid_text, parse_grid
from .folder import CONFIG, SUMMARY, RunLock, holds_run, load_run, make_out_folder, plain, \
    read_config, solver_label
from .options import run_options
from .overrides import apply_data_overrides, split_overrides
from .progress import Reporter, make_reporter
from .results import CompareResult, RunResult
from .tables import compare_table, write_compare_files

SWEEP_FILE = "sweep.yaml"
#: a run folder whose summary says one of these is finished: a new call skips it
FINISHED = ("completed", "diverged")


@dataclass(repr=False)
class SweepResult(CompareResult):
    """A :class:`CompareResult` of a sweep (``runs[label]``: the runs of a table row, one per
    seed), with the sweep's ``solver`` and ``grid`` and what this call did at each point:
    ``done[name]`` is ``ran``, ``resumed``, ``skipped`` (finished before) or ``failed``."""

    solver: str = ""
    grid: dict[str, list[Any]] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        from .records import compare_repr
        counts = ", ".join(f"{sum(v == k for v in self.done.values())} {k}"
                           for k in ("ran", "resumed", "skipped", "failed")
                           if k in self.done.values())
        return compare_repr(self, note=f"  solver {self.solver}, grid {grid_text(self.grid)}"
                                       f"; this call: {counts or 'nothing to do'}")


# ---------------------------------------------------------------------- the sweep folder
def _record(spec: ModelSpec, solver: str, grid: Mapping[str, Any], settings: Mapping[str, Any],
            epochs: int | None, seed: int, relax: bool) -> dict[str, Any]:
    """What ``sweep.yaml`` holds: what the sweep is (not how it runs)."""
    digest = hashlib.sha256(json.dumps(plain(spec.to_dict()), sort_keys=True).encode()
                            ).hexdigest()[:16]
    return {"ocdl_sweep": 1, "model": spec.name, "model_digest": digest, "solver": solver,
            "grid": plain(dict(grid)), "settings": plain(dict(settings)), "epochs": epochs,
            "seed": seed, "relax": relax}


def _check_or_write_record(out: Path, record: dict[str, Any]) -> None:
    """Write ``sweep.yaml`` in a new sweep folder, or check that the one there is this sweep's."""
    from ..errors import SpecError
    from ..modelspec.yaml_io import dump_yaml, parse_yaml, read_utf8
    from .checkpoint import write_text_atomic
    from .folder import LOCK, first_difference
    path = out / SWEEP_FILE
    text = dump_yaml(record)
    if not path.exists():
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if others:
            raise ConfigError(f"--out {out} is not empty and holds no {SWEEP_FILE} (it has "
                              f"{', '.join(others[:3])}{', …' if len(others) > 3 else ''}); "
                              "give a new or empty folder for a sweep")
        write_text_atomic(path, text)
        return
    try:
        there, _ = parse_yaml(read_utf8(path), str(path))
    except (OSError, SpecError) as e:
        raise ConfigError(f"{path}: unreadable ({e}); restore it, or give another --out"
                          ) from None
    here = parse_yaml(text, str(path))[0]
    if not isinstance(there, dict) or there.get("ocdl_sweep") != 1:
        raise ConfigError(f"{path} is not an ocdl sweep record; give another --out")
    redo = "rerun the command that made it to resume that sweep, or give another --out"
    if first_difference(there.get("grid"), here["grid"]) is not None or \
            list(there.get("grid") or {}) != list(here["grid"]):
        theirs = there.get("grid") if isinstance(there.get("grid"), dict) else {}
        raise ConfigError(f"--out {out} holds a sweep over another grid ({grid_text(theirs)}, "
                          f"not {grid_text(here['grid'])}); {redo}")
    diff = first_difference(there, here)
    if diff is not None:
        key = diff.split(".")[0].split("[")[0]
        raise ConfigError(f"--out {out} holds another sweep ({key}: {there.get(key)!r} there, "
                          f"{here.get(key)!r} here); {redo}")


def _point_state(run_dir: Path, solver: str, overrides: Mapping[str, Any], seed: int) -> str:
    """``new``, ``done`` (a finished run: skipped) or ``resume``; a folder that holds a run
    with other settings is refused."""
    from .folder import first_difference
    if not holds_run(run_dir):
        return "new"
    if (run_dir / CONFIG).is_file():
        cfg = read_config(run_dir / CONFIG).data
        want = {"solver": solver, "overrides": plain(dict(overrides)), "seed": seed}
        have = {"solver": cfg["solver"].get("name"), "overrides": cfg.get("overrides") or {},
                "seed": cfg["run"].get("seed")}
        diff = first_difference(have, want)
        if diff is not None:
            raise ConfigError(f"{run_dir} holds a run with another {diff} than this sweep's "
                              "point; move that folder away to run the point again")
    try:
        status = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return "resume"
    return "done" if status in FINISHED else "resume"


# ---------------------------------------------------------------------- running points
def _run_point(kind: str, model: Any, solver: str, overrides: dict[str, Any],
               epochs: int | None, device: str | None, out: Path, seed: int, relax: bool,
               reporter: Reporter | None = None, label: str = "") -> RunResult:
    if kind == "resume":
        return lifecycle.resume(out, epochs=epochs, device=device, quiet=True,
                                reporter=reporter, label=label)
    return lifecycle.start(model, solver, overrides=overrides, epochs=epochs, device=device,
                           out=out, seed=seed, quiet=True, reporter=reporter, label=label,
                           relax=relax)


def _worker_init(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _worker(kind: str, model: Any, solver: str, overrides: dict[str, Any], epochs: int | None,
            device: str | None, out: str, seed: int, relax: bool) -> tuple[str, str]:
    """A point in a worker process: ``(status, message)``, never an exception to unpickle."""
    try:
        r = _run_point(kind, model, solver, overrides, epochs, device, Path(out), seed, relax)
    except RunInterrupted as e:
        return "interrupted", str(e)
    except OcdlError as e:
        return "failed", str(e)
    return r.status, _outcome(r)


def _outcome(r: RunResult) -> str:
    acc = "" if r.final_test_acc is None else f", test acc {100 * r.final_test_acc:.2f} %"
    return f"{r.status}{acc}, {r.wall_time:.1f} s"


def _check_points(spec: ModelSpec, solver: str, settings: Mapping[str, Any],
                  points: list[Point], epochs: int | None, device: str | None,
                  relax: bool) -> None:
    """Every point's settings, checked before anything runs; the solver against the model's
    controls once."""
    from .device import resolve_device
    first = None
    for p in points:
        ov = split_overrides({**settings, **p.settings})
        apply_data_overrides(spec, ov.data)
        options = run_options(epochs=epochs, device=device, seed=p.seed, settings=ov.run)
        s = lifecycle.make_solver(solver, ov.solver)
        first = first or (s, resolve_device(options.device))
    model = spec.relaxed() if relax else spec
    first[0].init(model.compile(device=first[1], seed=points[0].seed))


def run_sweep(model: str | Path | ModelSpec, solver: str | None = None, *,
              grid: Mapping[str, Any] | Iterable[str], out: str | Path,
              overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
              device: str | None = None, seed: int | None = None, jobs: int = 1,
              relax: bool = False, quiet: bool | None = None,
              reporter: Reporter | None = None, plots: bool = True) -> SweepResult:
    """Run (or resume) the sweep of ``solver`` on ``model`` over ``grid`` in the folder
    ``out`` (see the module docstring); ``overrides``: the settings of every point."""
    axes = parse_grid(grid)
    settings = dict(overrides or {})
    clash = [k for k in axes if k in settings]
    if clash:
        raise ConfigError(f"{clash[0]} is both a grid axis and a fixed setting (--set); give "
                          "it in one place")
    if seed is not None and SEED in axes:
        raise ConfigError("seed is a grid axis; drop --seed (or drop the axis)")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer ≥ 1, got {jobs!r}")
    if out is None:
        raise ConfigError("a sweep needs its folder: give --out DIR (rerun with the same DIR "
                          "to resume)")
    spec = lifecycle.load_model(model)
    solver_name = str(solver) if solver else spec.default_solver()
    points = grid_points(axes, seed or 0)
    _check_points(spec, solver_name, settings, points, epochs, device, relax)
    out_dir = make_out_folder(out, "the sweep's folder")
    rep = reporter if reporter is not None else make_reporter(quiet)
    with RunLock(out_dir):
        _check_or_write_record(out_dir, _record(spec, solver_name, axes, settings, epochs,
                                                seed or 0, relax))
        todo = []
        done: dict[str, str] = {}
        for p in points:
            ov = {**settings, **p.settings}
            state = _point_state(out_dir / p.name, solver_name, ov, p.seed)
            if state == "done":
                done[p.name] = "skipped"
            else:
                todo.append((p, state, ov))
        if done:
            rep.message(f"{len(done)} of {len(points)} point(s) finished before: skipped")
        if jobs == 1 or len(todo) <= 1:
            _sequential(todo, spec, solver_name, epochs, device, out_dir, relax, rep, done)
        else:
            _parallel(todo, spec, solver_name, epochs, device, out_dir, relax, rep, done, jobs)
        return _gather(out_dir, spec, solver_name, axes, points, done, plots)


def _sequential(todo, spec, solver, epochs, device, out_dir, relax, rep, done) -> None:
    """The points of ``todo`` one after the other, in this process; ``done[name]`` records
    each outcome. Ctrl-C stops the sweep (the point keeps its checkpoint)."""
    for k, (p, state, ov) in enumerate(todo, 1):
        rep.message(f"[{k}/{len(todo)}] {p.name}" + (" (resumed)" if state == "resume" else ""))
        try:
            _run_point(state, spec, solver, ov, epochs, device, out_dir / p.name, p.seed, relax,
                       rep, p.name)
        except RunInterrupted as e:
            raise RunInterrupted(f"sweep stopped at point {p.name} ({e}); run the same command "
                                 "again to resume the sweep") from None
        except OcdlError as e:
            rep.message(f"{p.name}: {e}")
            done[p.name] = "failed"
            continue
        done[p.name] = "resumed" if state == "resume" else "ran"


def _parallel(todo, spec, solver, epochs, device, out_dir, relax, rep, done, jobs) -> None:
    """``jobs`` points at a time, each in its own (spawned) process with its share of the CPU
    threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads,))
    try:
        futures = {pool.submit(_worker, state, spec, solver, ov, epochs, device,
                               str(out_dir / p.name), p.seed, relax): (p, state)
                   for p, state, ov in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            (p, state), (status, message) = futures[fut], fut.result()
            rep.message(f"[{k}/{len(todo)}] {p.name}: {message}")
            if status == "interrupted":
                raise RunInterrupted(f"sweep stopped at point {p.name}; run the same command "
                                     "again to resume the sweep")
            done[p.name] = "failed" if status == "failed" else \
                "resumed" if state == "resume" else "ran"
    except KeyboardInterrupt:
        raise RunInterrupted("sweep stopped (the running points saved checkpoints); run the "
                             "same command again to resume it") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _gather(out_dir: Path, spec: ModelSpec, solver: str, axes: dict[str, list[Any]],
            points: list[Point], done: dict[str, str], plots: bool) -> SweepResult:
    """Every point's run read back from its folder, into the table and plots of a comparison."""
    from .compare import _failed
    runs: dict[str, list[RunResult]] = {}
    own_label = solver_label(solver)
    for p in points:
        d = out_dir / p.name
        r = load_run(d) if (d / "log.jsonl").is_file() else \
            _failed(d, spec.name, solver, p.seed, "?", ConfigError("never started"))
        runs.setdefault(p.label or own_label, []).append(r)
    title = "point" if any(k != SEED for k in axes) else "solver"
    result = SweepResult(out_dir=out_dir, model=spec.name, runs=runs,
                         table=compare_table(runs), label_title=title, solver=solver,
                         grid=axes, done={p.name: done.get(p.name, "failed") for p in points})
    write_compare_files(result)
    if plots:
        from .plots import write_compare_plots
        result.plots = write_compare_plots({n: [r.history for r in rs] for n, rs in runs.items()},
                                           out_dir, title=f"{spec.name}, {solver}")
    return result
