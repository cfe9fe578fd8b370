"""Several solvers (and seeds) on one model: one run folder each, a table and plots; or finished
runs made separately (other settings, devices, times) gathered into the same table and plots
(:func:`compare_runs`).

Solver settings given as bare keys (``rho=0.3``) go to every solver that has that setting; a key
that no compared solver has is an error. Every solver is built and checked against the model's
controls before the first run starts, so an unsuitable solver fails at once — except that a
solver for real controls only (Adam, SGD) on a model with discrete sets runs on the relaxed model
(:func:`ocdl.modelspec.transform.relax`: same architecture and costs, real weights) when ``relax`` is
on (the default), and is labelled ``<solver> [real]`` in the table and plots.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import (ConfigError, DivergenceError, OcdlError, RunInterrupted, SolverError,
                      did_you_mean)
from ..modelspec.model import ModelSpec
from . import lifecycle
from .device import resolve_device
from .folder import load_run, new_run_dir, solver_label
from .options import run_options
from .overrides import apply_data_overrides, split_overrides
from .progress import Reporter, make_reporter
from .results import CompareResult, RunResult
from .tables import accuracy_level, compare_table, write_compare_files


def parse_solvers(solvers: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in solvers.split(",")] if isinstance(solvers, str) else \
        [str(s).strip() for s in solvers]
    names = [s for s in names if s]
    if not names:
        raise ConfigError("give at least one solver, e.g. --solvers emsa-ternary,adam")
    if len(set(names)) != len(names):
        raise ConfigError(f"a solver is listed twice in {', '.join(names)}")
    return names


def seed_list(seeds: int | Sequence[int], base: int = 0) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        return [base + k for k in range(seeds)]
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("give at least one seed")
    return out


def per_solver_overrides(names: list[str], solver_settings: Mapping[str, Any]
                         ) -> dict[str, dict[str, Any]]:
    """Route each bare solver setting to the solvers that have it (checks every solver)."""
    keys: dict[str, set[str]] = {}
    for name in names:
        s = lifecycle.make_solver(name, {})  # flat names and their block paths (sparsity.target)
        keys[name] = set(getattr(s, "hp", {})) | set(getattr(getattr(s, "layout", None), "flat",
                                                             {}))
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for k, v in solver_settings.items():
        takers = [n for n in names if k in keys[n]]
        if not takers:
            known = sorted(set().union(*keys.values()))
            raise ConfigError(f"no compared solver has the setting '{k}'{did_you_mean(k, known)}"
                              f"; their settings: {', '.join(known)}")
        for n in takers:
            out[n][k] = v
    return out


def run_compare(model: str | Path | ModelSpec, solvers: str | Sequence[str], *,
                seeds: int | Sequence[int] = 1, seed: int = 0, epochs: int | None = None,
                device: str | None = None, out: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, quiet: bool | None = None,
                reporter: Reporter | None = None, plots: bool = True,
                relax: bool = True, reach: Sequence[Any] = ()) -> CompareResult:
    names = parse_solvers(solvers)
    levels = [accuracy_level(a) for a in reach]
    seeds_ = seed_list(seeds, seed)
    spec = lifecycle.load_model(model)
    ov = split_overrides(overrides)
    spec = apply_data_overrides(spec, ov.data)
    options = run_options(epochs=epochs, device=device, settings=ov.run)
    dev = resolve_device(options.device)
    by_solver = per_solver_overrides(names, ov.solver)
    # check every solver against the model's controls before anything runs
    specs: dict[str, ModelSpec] = {}
    labels: dict[str, str] = {}
    for n in names:
        s = lifecycle.make_solver(n, by_solver[n])
        specs[n], labels[n] = spec, n
        try:
            s.init(spec.compile(device=dev, seed=seeds_[0]))
        except SolverError:
            if not (relax and spec.has_discrete() and "real" in getattr(s, "supports", ())):
                raise
            specs[n], labels[n] = spec.relaxed(), f"{n} [real]"
            s.init(specs[n].compile(device=dev, seed=seeds_[0]))
    out_dir = _out_dir(out, f"compare-{spec.name}")
    rep = reporter if reporter is not None else make_reporter(quiet)
    runs: dict[str, list[RunResult]] = {labels[n]: [] for n in names}
    total = len(names) * len(seeds_)
    k = 0
    for n in names:
        for sd in seeds_:
            k += 1
            rep.message(f"[{k}/{total}] {n}, seed {sd}")
            run_ov = {**{f"run.{a}": b for a, b in ov.run.items()}, **by_solver[n]}
            run_dir = out_dir / f"{solver_label(n)}-seed{sd}"
            try:
                r = lifecycle.start(specs[n], n, overrides=run_ov, epochs=options.epochs,
                                  device=options.device, out=run_dir, seed=sd, reporter=rep,
                                  label=f"{solver_label(n)} s{sd}")
            except RunInterrupted as e:  # Ctrl-C stops the whole comparison
                raise RunInterrupted(f"comparison stopped during run {k} of {total} ({n}, seed "
                                     f"{sd}); {e}") from None
            except OcdlError as e:
                rep.message(f"{n}, seed {sd}: {e}")
                r = _failed(run_dir, spec.name, n, sd, str(dev), e)
            runs[labels[n]].append(r)
    result = CompareResult(out_dir=out_dir, model=spec.name, runs=runs,
                           table=compare_table(runs, levels))
    write_compare_files(result)
    if plots:
        from .plots import write_compare_plots
        result.plots = write_compare_plots({n: [r.history for r in rs] for n, rs in runs.items()},
                                           out_dir, title=spec.name)
    return result


def compare_runs(run_dirs: Sequence[str | Path], *, labels: Sequence[str] | None = None,
                 out: str | Path | None = None, plots: bool = True,
                 reach: Sequence[Any] = ()) -> CompareResult:
    """Tabulate and plot finished runs side by side, as :func:`run_compare` does for the runs it
    makes: each folder of ``run_dirs`` is read back (:func:`ocdl.run.folder.load_run`) and
    labelled by ``labels`` (default: its folder name); runs sharing a label are averaged like
    the seeds of one solver. Writes ``compare.md``, ``compare.csv``, ``compare.json`` and the
    PNG plots under ``out`` (default ``runs/compare-runs-<timestamp>``). ``reach``: test
    accuracies (0.89 or 89) whose training time to get there the table adds."""
    levels = [accuracy_level(a) for a in reach]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ConfigError("no run folders given; e.g. ocdl compare-runs runs/a runs/b")
    if labels is not None and len(labels) != len(dirs):
        raise ConfigError(f"{len(labels)} label(s) for {len(dirs)} run folder(s); give one "
                          "label per folder (or none: the folder names)")
    names = list(labels) if labels is not None else [d.name for d in dirs]
    runs: dict[str, list[RunResult]] = {}
    for name, d in zip(names, dirs):
        runs.setdefault(name, []).append(load_run(d))
    models = ", ".join(dict.fromkeys(r.model for rs in runs.values() for r in rs))
    out_dir = _out_dir(out, "compare-runs")
    result = CompareResult(out_dir=out_dir, model=models, runs=runs,
                           table=compare_table(runs, levels), label_title="run")
    write_compare_files(result)
    if plots:
        from .plots import write_compare_plots
        result.plots = write_compare_plots({n: [r.history for r in rs] for n, rs in runs.items()},
                                           out_dir, title=models)
    return result


def _out_dir(out: str | Path | None, stem: str) -> Path:
    if out is None:
        return new_run_dir(stem)
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {out_dir}: {e.strerror or e}; choose another --out"
                          ) from None
    return out_dir


def _failed(run_dir: Path, model: str, solver: str, seed: int, device: str,
            err: Exception) -> RunResult:
    from .metrics import read_log
    history = [r for r in read_log(run_dir / "log.jsonl") if r.get("type") == "epoch"]
    status = "diverged" if isinstance(err, DivergenceError) else "failed"
    tests = [h["test_acc"] for h in history if h.get("test_acc") is not None]
    return RunResult(run_dir=run_dir, model=model, solver=solver, seed=seed,
                     epochs=len(history), history=history,
                     final_test_acc=None, best_test_acc=max(tests) if tests else None,
                     best_valid_acc=None, best_epoch=None, test_acc_at_best_valid=None,
                     nonzero_fraction=history[-1].get("nonzero") if history else None,
                     wall_time=history[-1].get("time", 0.0) if history else 0.0,
                     device=device, status=status)
