"""Setting up, running and finishing one run: spec + solver + data + loop → run folder.

Order matters for users: everything that can fail on their input (the spec, ``--set`` keys, the
solver and whether it handles the controls' sets, the data) is checked before the run folder is
created, so a typo leaves no half-made folder behind.

A run folder holds ``config.yaml`` (resolved spec, solver preset and hyperparameters, overrides,
seed, device), ``log.jsonl``, ``last.pt``, ``best.pt``, and at the end ``controls.pt`` (the final
controls and buffers, :meth:`System.state_dict`) and ``summary.json``; a spec with
``initial_controls`` also leaves their copy, ``initial_controls.pt``, which the recorded spec
names (so ``--like`` and ``--resume`` start from the same values).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import (CheckpointError, ConfigError, ControlSetError, DivergenceError, OcdlError,
                      RunInterrupted)
from ..modelspec.initial import record_in_run
from ..modelspec.model import ModelSpec
from . import distributed
from .checkpoint import load_checkpoint, remove_stale_temps, save_atomic, seed_everything
from .device import apply_precision, configure_forward, resolve_device
from .options import RunOptions, run_options
from .overrides import apply_data_overrides, split_overrides
from .folder import (CONFIG, LAST, LOG, RunLock, build_config, check_same_run, claim, read_config,
                     solver_label, write_config)
from .events import Callback, Callbacks
from .loop import Loop
from .metrics import JsonlLog, NullLog
from .progress import Reporter, make_reporter
from .results import RunResult, result_from_history, write_summary


# The solver layer, through an indirection that tests replace with a stand-in (run_fakes.py).
def make_solver(name: str, overrides: Mapping[str, Any]):
    from ..solvers import make_solver as _make
    return _make(name, dict(overrides))


def load_model(model: str | Path | ModelSpec) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, Path)):
        from ..models import resolve_model
        from ..modelspec import load_spec
        return load_spec(resolve_model(model))
    raise ConfigError(f"model must be a path to a YAML spec or a ModelSpec, got "
                      f"{type(model).__name__}")


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    return obj


@dataclasses.dataclass
class Prepared:
    """Everything a run needs, built and checked, before anything is written."""

    spec: ModelSpec
    solver_name: str
    solver: Any
    system: Any
    state: dict[str, Any]
    feeders: Any
    options: RunOptions
    device: torch.device
    overrides: dict[str, Any]


def prepare(model: str | Path | ModelSpec, solver: str | None = None, *,
            overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
            device: str | None = None, seed: int | None = None, relax: bool = False,
            solver_base: Mapping[str, Any] | None = None, run_base: RunOptions | None = None
            ) -> Prepared:
    """Load and check the spec, settings, solver and data (raises :class:`OcdlError`).

    relax: train the relaxed model (:func:`ocdl.modelspec.transform.relax`: every discrete control
    set made real, all else the same), e.g. Adam as a real-weight reference of a ternary net.
    solver_base, run_base: hyperparameters and loop options under the overrides and arguments
    (a run started ``--like`` a recorded one, :mod:`ocdl.run.rerun`); default: the preset's and
    :class:`RunOptions`' defaults."""
    spec = load_model(model)
    if relax:
        spec = spec.relaxed()
    ov = split_overrides(overrides)
    spec = apply_data_overrides(spec, ov.data)
    if spec.takes_data and spec.data is None:
        raise ConfigError(f"model '{spec.name}' has no data: block; add one to the spec or name "
                          "a dataset with --set data.name=mnist-subset")
    options = run_options(run_base, epochs=epochs, seed=seed, device=device, settings=ov.run)
    dev = distributed.local_device(resolve_device(options.device))
    apply_precision(options, dev)
    solver_name = str(solver) if solver else spec.default_solver()
    settings = {**(solver_base or {}), **ov.solver}
    solver_obj = make_solver(solver_name, settings)
    hp = getattr(solver_obj, "hp", {})
    if "seed" in hp and "seed" not in settings and hp["seed"] != options.seed:
        # a solver's own random draws follow the run's seed unless set explicitly
        solver_obj = make_solver(solver_name, {**settings, "seed": options.seed})
    seed_everything(options.seed)
    system = spec.compile(device=dev, seed=options.seed)
    configure_forward(options, system, solver_obj)
    try:
        state = solver_obj.init(system)
    except ControlSetError as e:  # a set the solver refuses: training a relaxed copy may be meant
        if spec.has_discrete() and "real" in getattr(solver_obj, "supports", ()):
            raise ControlSetError(f"{e}; or add --relax (relax=True in ocdl.solve) to train a "
                                  "copy of the model with real weights") from None
        raise
    feeders = spec.feeders(system, dev)
    distributed.attach(distributed.start(dev, sync_bn=options.sync_bn), system, feeders)
    if len(feeders.train) == 0:
        raise ConfigError("the training split is empty; check data.limit and data.split")
    return Prepared(spec, solver_name, solver_obj, system, state, feeders, options, dev,
                    dict(overrides or {}))


def start(model: str | Path | ModelSpec | None, solver: str | None = None, *,
          overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
          device: str | None = None, out: str | Path | None = None, seed: int | None = None,
          quiet: bool | None = None, reporter: Reporter | None = None,
          label: str = "", relax: bool = False, like: str | Path | None = None,
          recipe: str | None = None, callbacks: Iterable[Callback] = ()) -> RunResult:
    """A new run (see :func:`ocdl.api.solve`); ``like``: a recorded run whose settings are the
    bases of this one's (:mod:`ocdl.run.rerun`); ``recipe``: the recipe the arguments come from
    (recorded in ``config.yaml``); ``callbacks``: see :mod:`ocdl.run.events`."""
    bases: dict[str, Any] = {}
    source: Path | None = None  # the config.yaml read for ``like``
    if like is not None:
        from .rerun import load_like
        lk = load_like(like, make_solver, model=None if model is None else load_model(model),
                       solver=solver, overrides=overrides)
        model, solver, overrides, source = lk.model, lk.solver, lk.overrides, lk.source
        bases = {"solver_base": lk.solver_base, "run_base": lk.run_base}
    elif model is None:
        raise ConfigError("give a model (a YAML spec path or a ModelSpec), or like= a run folder")
    p = prepare(model, solver, overrides=overrides, epochs=epochs, device=device, seed=seed,
                relax=relax, **bases)
    dp = p.system.data_parallel
    writer = dp is None or dp.writer
    try:  # rank 0 alone claims (creates and locks) the run folder and writes in it
        stem = f"{p.spec.name}-{solver_label(p.solver_name)}"
        run_dir, lock = claim(out, stem) if dp is None else _claim_on_writer(dp, out, stem)
    except OcdlError:
        _leave(dp)
        raise
    try:
        if writer:
            remove_stale_temps(run_dir)
        # the spec's initial controls, copied into the folder: its record rebuilds the same start
        recorded = record_in_run(p.spec, run_dir) if writer else p.spec
        config = build_config(recorded, p.solver_name, getattr(p.solver, "hp", {}), p.overrides,
                              p.options, p.device)
        if source is not None:
            config["like"] = str(source)
        if recipe is not None:
            config["recipe"] = recipe
        if dp is not None:
            config["processes"] = dp.world
        if writer:
            write_config(run_dir, config)
        log = JsonlLog(run_dir / LOG, truncate_to=0) if writer else NullLog()
        loop = Loop(system=p.system, solver=p.solver, state=p.state, feeders=p.feeders,
                    options=p.options, run_dir=run_dir, config=config, log=log,
                    reporter=_reporter(reporter, quiet, writer), label=label,
                    callbacks=run_callbacks(callbacks, p.options, run_dir) if writer else None,
                    writer=writer)
        return _execute(loop, p.spec.name, p.solver_name, p.options, p.device, config)
    finally:
        if lock is not None:
            lock.release()
        _leave(dp)


def _claim_on_writer(dp: Any, out: str | Path | None, stem: str) -> tuple[Path, Any]:
    """Rank 0 claims the run folder (:func:`claim`) and tells the other ranks its path; they
    hold no lock (``None``)."""
    held: list[Any] = []

    def make() -> str:
        run_dir, lock = claim(out, stem)
        held.append(lock)
        return str(run_dir)

    return Path(dp.from_writer(make)), (held[0] if held else None)


def _reporter(reporter: Reporter | None, quiet: bool | None, writer: bool) -> Reporter:
    """The progress reporter: the caller's or a new one on rank 0, a silent one elsewhere."""
    if not writer:
        return make_reporter(True)
    return reporter if reporter is not None else make_reporter(quiet)


def _leave(dp: Any) -> None:
    """End a data-parallel run's part in its process group."""
    if dp is not None:
        dp.close()


def run_callbacks(callbacks: Iterable[Callback], options: RunOptions, run_dir: Path
                  ) -> Callbacks:
    """The user's callbacks, then the TensorBoard writer when ``run.tensorboard`` is set."""
    given = list(callbacks)
    if options.tensorboard:
        from .tensorboard import TensorBoardCallback
        given.append(TensorBoardCallback(run_dir))
    return Callbacks(given)


# run settings a resumed run may change: how long it may go on (its training is unchanged)
RESUME_RUN_KEYS = ("time_limit", "tensorboard")


def resume(run_dir: str | Path, *, model: str | Path | ModelSpec | None = None,
           solver: str | None = None, overrides: Mapping[str, Any] | None = None,
           epochs: int | None = None, device: str | None = None, seed: int | None = None,
           quiet: bool | None = None, reporter: Reporter | None = None,
           label: str = "", callbacks: Iterable[Callback] = ()) -> RunResult:
    """Continue the run in ``run_dir`` from its ``last.pt`` (up to ``epochs`` in total);
    ``overrides`` may only give a new ``run.time_limit`` (the wall time of the whole run, earlier
    sessions included; 0: none), e.g. to go on after a run ended at its limit.

    A run stopped before its first checkpoint (killed, or diverged at once) has only its
    ``config.yaml``: it starts again from the beginning with those settings, in its folder,
    as a fresh start would (bit for bit on the CPU). A damaged ``config.yaml``, ``last.pt`` or
    ``log.jsonl`` is an error that names the file; nothing is overwritten then."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder")
    extendable = {f"run.{k}" for k in RESUME_RUN_KEYS}
    fixed = sorted(set(overrides or {}) - extendable)
    if solver is not None or fixed or seed is not None:
        raise ConfigError("a resumed run keeps its solver, settings and seed (see its "
                          "config.yaml); give only --resume DIR, and optionally --epochs, "
                          "--device, --quiet or " + ", ".join(sorted(extendable))
                          + (f" (not {', '.join(fixed)})" if fixed else "")
                          + f"; to train with other settings, start a new run with --like "
                          f"{run_dir}")
    # a data-parallel run: every rank reads the folder (a shared file system), rank 0 alone
    # locks it and writes
    writer = distributed.rank() == 0
    dp = None
    with RunLock(run_dir) if writer else contextlib.nullcontext():
        on_disk = read_config(run_dir / CONFIG) if (run_dir / CONFIG).exists() else None
        ck = None
        if (run_dir / LAST).exists():
            ck = load_checkpoint(run_dir / LAST)
            config, source = ck["config"], run_dir / LAST
            if on_disk is not None:
                check_same_run(on_disk, config, source)
        elif on_disk is not None:  # stopped before its first checkpoint: start again
            config, source = on_disk.data, on_disk.path
        else:
            raise CheckpointError(f"--resume {run_dir}: no checkpoint and no config.yaml there,"
                                  " so no run to resume; start one with ocdl solve MODEL --out "
                                  f"{run_dir}")
        r = _rebuild(config, source, on_disk.spec if ck is None else None, epochs=epochs,
                     device=device, run_settings=split_overrides(overrides).run)
        dp = r.system.data_parallel
        try:
            return _resume_built(r, run_dir, config, source, ck, model=model, quiet=quiet,
                                 reporter=reporter, label=label, callbacks=callbacks)
        finally:
            _leave(dp)


def _resume_built(r: Prepared, run_dir: Path, config: dict[str, Any], source: Path,
                  ck: dict[str, Any] | None, *, model: Any, quiet: bool | None,
                  reporter: Reporter | None, label: str, callbacks: Iterable[Callback]
                  ) -> RunResult:
    """The rest of :func:`resume` once the run is rebuilt: load the checkpoint, match the
    position to the number of processes, run the loop."""
    dp = r.system.data_parallel
    writer = dp is None or dp.writer
    if model is not None:
        given = load_model(model)
        own = ("data", "initial_controls")  # the run has its own copy of the latter
        if {k: v for k, v in given.to_dict().items() if k not in own} != \
                {k: v for k, v in r.spec.to_dict().items() if k not in own}:
            raise ConfigError(f"the model given differs from the one in {run_dir}/"
                              f"config.yaml; resume with just --resume {run_dir}")
    state = r.state
    offset = 0
    if ck is not None:
        try:
            r.system.load_state_dict(ck["system"])
        except OcdlError as e:
            raise CheckpointError(f"{source}: {e}") from None
        state = _to_device(ck["solver_state"], r.device)
        offset = _log_offset(run_dir / LOG, ck)
    saved = int(config.get("processes", 1))
    now = 1 if dp is None else dp.world
    change = None
    if saved != now:
        b = r.feeders.train.batch_size
        change = distributed.world_change_line(saved, now, b)
        if ck is not None:
            ck["batch"] = _rescaled_position(int(ck["batch"]), saved * b, now * b, run_dir,
                                             saved)
    if dp is not None:
        dp.barrier()  # every rank has read the folder before rank 0 writes in it
    config = {**config, "run": {**r.options.to_dict(), "device_resolved": str(r.device)}}
    config.pop("processes", None)
    if dp is not None:
        config["processes"] = dp.world
    if ck is not None:
        ck["config"] = config
    if writer:
        remove_stale_temps(run_dir)
        write_config(run_dir, config)
    log = JsonlLog(run_dir / LOG, truncate_to=offset) if writer else NullLog()
    loop = Loop(system=r.system, solver=r.solver, state=state, feeders=r.feeders,
                options=r.options, run_dir=run_dir, config=config, log=log,
                reporter=_reporter(reporter, quiet, writer), checkpoint=ck, label=label,
                callbacks=run_callbacks(callbacks, r.options, run_dir) if writer else None,
                writer=writer)
    if change is not None:
        loop.reporter.message(change)
    return _execute(loop, r.spec.name, r.solver_name, r.options, r.device, config)


def _rescaled_position(batch: int, old: int, new: int, run_dir: Path, saved: int) -> int:
    """The index of the next global batch of ``new`` rows for a run stopped before the global
    batch ``batch`` of ``old`` rows (the same samples done); refuses a position that is not on
    a boundary of both."""
    done = batch * old
    if done % new:
        raise ConfigError(f"{run_dir}/last.pt stopped after {done} samples of its epoch, which "
                          f"is not a whole number of global batches of {new}; resume with "
                          f"{saved} process{'es' if saved > 1 else ''}, or from an epoch end")
    return done // new


def _rebuild(config: Mapping[str, Any], source: Path, read_spec: Any = None, *,
             epochs: int | None, device: str | None, run_settings: Mapping[str, Any]
             ) -> Prepared:
    """The run that ``config`` (read from ``source``: ``config.yaml`` or the checkpoint that
    holds it) records, built as :func:`prepare` built it: spec (by ``read_spec()`` if given),
    solver with its recorded hyperparameters, seeded controls, fresh solver state, data. Errors
    name ``source``."""
    from ..modelspec.validate import spec_from_dict
    try:
        spec = read_spec() if read_spec else spec_from_dict(config["model"], file=str(source))
        run = {k: v for k, v in config["run"].items() if k in RunOptions.__dataclass_fields__}
        options = run_options(RunOptions(**run), epochs=epochs, device=device,
                              settings=run_settings)
        dev = distributed.local_device(resolve_device(options.device))
        solver_name = str(config["solver"]["name"])
        solver_obj = make_solver(solver_name, dict(config["solver"].get("hp") or {}))
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{source} is not an ocdl run record (bad or missing "
                          f"{type(e).__name__}: {e}); restore it from a copy") from None
    except OcdlError as e:
        raise ConfigError(str(e) if str(source) in str(e) else f"{source}: {e}") from None
    apply_precision(options, dev)
    seed_everything(options.seed)
    system = spec.compile(device=dev, seed=options.seed)
    configure_forward(options, system, solver_obj)
    state = solver_obj.init(system)
    feeders = spec.feeders(system, dev)
    distributed.attach(distributed.start(dev, sync_bn=options.sync_bn), system, feeders)
    return Prepared(spec, solver_name, solver_obj, system, state, feeders, options, dev, {})


def _log_offset(log: Path, ck: Mapping[str, Any]) -> int:
    """Where the log of a checkpointed run is cut on resuming (what was logged after the
    checkpoint goes); a log shorter than that was damaged, and the run is not resumed."""
    offset = int(ck["log_offset"])
    size = log.stat().st_size if log.exists() else 0
    if size < offset:
        raise CheckpointError(f"{log} is shorter ({size} bytes) than when {log.parent / LAST} "
                              f"was written ({offset} bytes): the log was truncated or "
                              "replaced; restore it from a copy to resume")
    return offset


def _execute(loop: Loop, model_name: str, solver_name: str, options: RunOptions,
             device: torch.device, config: dict[str, Any]) -> RunResult:
    try:
        loop.run()
    except (RunInterrupted, DivergenceError):
        _finish(loop, model_name, solver_name, options, device, config, write_controls=False)
        raise
    except RuntimeError as e:  # a data-parallel run's collective inside autograd (sync_bn)
        dp = loop.system.data_parallel
        if dp is None or not dp.is_collective_failure(e):
            raise
        raise dp.lost(e, f"epoch {loop.epoch}") from None
    finally:
        loop.log.close()
    return _finish(loop, model_name, solver_name, options, device, config,
                   write_controls=True)


def _finish(loop: Loop, model_name: str, solver_name: str, options: RunOptions,
            device: torch.device, config: dict[str, Any], *, write_controls: bool
            ) -> RunResult:
    system = loop.system
    nonzero = loop.history[-1].get("nonzero") if loop.history else None
    if write_controls:
        from .metrics import nonzero_by_stage
        nonzero = nonzero_by_stage(system).get("nonzero", nonzero)
        if loop.writer:
            save_atomic(system.state_dict(), loop.run_dir / "controls.pt")
    result = result_from_history(
        loop.history, run_dir=loop.run_dir, model=model_name, solver=solver_name,
        seed=options.seed, device=str(device), best=loop.best, wall_time=loop.elapsed(),
        nonzero=nonzero, status=loop.final_status, system=system, config=config)
    extra: dict[str, Any] = {"best_by": loop.best.get("by"),
                             "stopped_by_time_limit": loop.stopped_by_time_limit}
    if write_controls:
        outside = system.check_sets()
        extra["controls_outside_sets"] = outside
        if outside:
            loop.reporter.message(f"warning: controls outside their sets: {', '.join(outside)}")
    if not loop.writer:  # a data-parallel run's other ranks: rank 0 writes the summary
        return result
    try:
        write_summary(result, extra)
    except OcdlError:
        if write_controls:
            raise
    return result
