"""The Python API of runs: :func:`solve`, :func:`compare`, :func:`compare_runs`,
:func:`sweep`, :func:`evaluate` (what ``ocdl solve``, ``ocdl compare``, ``ocdl
compare-runs``, ``ocdl sweep`` and ``ocdl evaluate`` do, from Python), :func:`load_trained`
(a run's network as a ``torch.nn.Module``) and :func:`load_system` (its compiled System and
data feeders).

The model (what), the solver (how) and the loop options stay apart::

    from ocdl.api import solve
    result = solve("quickstart", solver="emsa-ternary",
                   overrides={"rho": 0.3, "data.limit": 2000}, epochs=5)
    result.final_test_acc, result.nonzero_fraction, result.history[-1], result.system
    result = solve(recipe="mnist-ternary-20")      # a recipe: ocdl/recipes/mnist-ternary-20.yaml

A model is a YAML spec's path, a shipped model's name (``ocdl models`` lists them) or a
:class:`ModelSpec`.

``overrides`` are the ``--set`` settings: bare keys (``rho``) or ``solver.<key>`` go to the
solver's hyperparameters, ``data.<key>`` to the spec's ``data:`` block, ``run.<key>`` to the
loop (``run.log_every``, ``run.checkpoint_every``). Errors are :class:`ocdl.errors.OcdlError`;
a run stopped by Ctrl-C raises :class:`ocdl.run.RunInterrupted` after saving a checkpoint, and
a run whose loss becomes NaN/inf raises :class:`ocdl.errors.DivergenceError`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .run import lifecycle
from .run.compare import compare_runs as _compare_runs, run_compare
from .run.events import Callback, Event
from .run.evaluation import Evaluation, evaluate_run, load_trained as _load_trained
from .run.results import CompareResult, RunResult
from .modelspec.model import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["CompareResult", "Evaluation", "Event", "RunResult", "compare", "compare_runs",
           "evaluate", "export", "load_system", "load_trained", "solve", "sweep"]


def solve(model: str | Path | ModelSpec | None = None, solver: str | None = None, *,
          overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
          device: str | None = None, out: str | Path | None = None, seed: int | None = None,
          resume: str | Path | None = None, quiet: bool | None = True,
          relax: bool = False, like: str | Path | None = None,
          recipe: str | Path | None = None, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train ``model`` (a YAML path, a shipped model's name such as ``quickstart``, or a
    :class:`ModelSpec`) with ``solver`` (a preset name such
    as ``emsa-ternary`` or a preset YAML file; default: the E-MSA preset for the model's control
    sets) and return a :class:`RunResult`.

    epochs: total epochs (default 10). device: ``cpu``, ``cuda`` or ``auto`` (default).
    out: the run folder (default ``runs/<model>-<solver>-<timestamp>``). seed: seeds the
    controls' initialisation and the global RNGs (default 0). resume: a run folder to continue
    from its ``last.pt``, bit-identically on the CPU (only ``epochs``/``device`` may be given
    with it). quiet: no progress output (default for the API; ``False`` shows epoch lines and,
    on a terminal, a progress bar). relax: train a copy of the model whose discrete control sets
    are made real (same architecture and costs), e.g. ``solve(m, "adam", relax=True)`` as the
    real-weight reference of a ternary network; the run folder stores the relaxed spec.
    like: a run folder (or its ``config.yaml``) whose settings this new run starts from: its
    model (unless ``model`` is given), preset and recorded hyperparameters (given ``solver``:
    that preset's current defaults), ``--set`` settings and loop options, each replaced by what
    is given here, e.g.
    ``solve(like="runs/A", seed=1)`` or ``solve(like="runs/A", overrides={"rho": 0.5})``
    (:mod:`ocdl.run.rerun`).
    recipe: a recipe file or a shipped recipe's name (``ocdl recipes`` lists them) whose model,
    solver, epochs, device, seed and settings this run takes, each replaced by the one given
    here (``overrides`` key by key; another ``solver`` drops the recipe's solver settings), e.g.
    ``solve(recipe="mnist-ternary-20", epochs=5)`` (:mod:`ocdl.run.recipes`).
    callbacks: callables each called with every :class:`~ocdl.run.events.Event` of the run
    (``iterations``, ``evaluation``, ``epoch_end``, ``checkpoint``, ``divergence``;
    :mod:`ocdl.run.events`), to feed a tracker of one's own; ``--set run.tensorboard=true``
    adds a TensorBoard writer.
    """
    from .errors import ConfigError
    if recipe is not None:
        if resume is not None or like is not None:
            raise ConfigError("recipe starts a new run from a recipe's settings; it excludes "
                              "resume and like (a run folder's settings)")
        from .run.recipes import load_recipe
        args = load_recipe(recipe).arguments(model=model, solver=solver, overrides=overrides,
                                              epochs=epochs, device=device, seed=seed)
        return lifecycle.start(**args, out=out, quiet=quiet, relax=relax, recipe=str(recipe),
                               callbacks=callbacks)
    if resume is not None:
        if relax:
            raise ConfigError("relax is fixed when a run starts; resume with just the run folder")
        if like is not None:
            raise ConfigError("resume and like exclude each other: resume continues a run in "
                              "its folder, like starts a new one with a recorded run's settings")
        return lifecycle.resume(resume, model=model, solver=solver, overrides=overrides,
                              epochs=epochs, device=device, seed=seed, quiet=quiet,
                              callbacks=callbacks)
    if model is None and like is None:
        raise ConfigError("give a model (a YAML spec path, a shipped model's name or a "
                          "ModelSpec), recipe= a recipe, resume= a run folder to continue, or "
                          "like= a run folder to start from its settings")
    return lifecycle.start(model, solver, overrides=overrides, epochs=epochs, device=device,
                         out=out, seed=seed, quiet=quiet, relax=relax, like=like,
                         callbacks=callbacks)


def compare(model: str | Path | ModelSpec, solvers: str | Sequence[str], *,
            seeds: int | Sequence[int] = 1, seed: int = 0, epochs: int | None = None,
            device: str | None = None, out: str | Path | None = None,
            overrides: Mapping[str, Any] | None = None, quiet: bool | None = True,
            plots: bool = True, relax: bool = True, reach: Sequence[Any] = ()) -> CompareResult:
    """Run each solver in ``solvers`` (a list or ``"a,b,c"``) for each seed (``seeds`` runs
    with seeds ``seed, seed+1, …``, or an explicit list) on ``model``; write each run's folder
    under ``out`` (default ``runs/compare-<model>-<timestamp>``), ``compare.md``,
    ``compare.csv``, ``compare.json`` and PNG plots (loss and accuracy against epoch and wall
    time, sparsity against epoch). Returns a :class:`CompareResult` whose ``table`` holds the
    mean and std over seeds of final/best test accuracy, non-zero fraction and wall time.
    With ``relax`` a real-only solver (adam, sgd) on a model with discrete sets trains the same
    architecture with real weights and is labelled ``<solver> [real]``. ``reach``: test
    accuracies (``[0.98, 0.99]`` or ``[98, 99]``) for which the table adds each solver's
    training time (and epoch) to get there, the first evaluated epoch at or above it (runs that
    never did are counted, not averaged)."""
    return run_compare(model, solvers, seeds=seeds, seed=seed, epochs=epochs, device=device,
                       out=out, overrides=overrides, quiet=quiet, plots=plots, relax=relax,
                       reach=reach)


def compare_runs(run_dirs: Sequence[str | Path], *, labels: Sequence[str] | None = None,
                 out: str | Path | None = None, plots: bool = True,
                 reach: Sequence[Any] = ()) -> CompareResult:
    """Gather finished run folders (made by :func:`solve` or :func:`compare`, with any settings,
    on any device) into one :class:`CompareResult`: the same table, files and plots as
    :func:`compare`, one entry per label (default: the folder names; runs sharing a label are
    averaged as seeds); ``reach`` as for :func:`compare`."""
    return _compare_runs(run_dirs, labels=labels, out=out, plots=plots, reach=reach)


def sweep(model: str | Path | ModelSpec, solver: str | None = None, *,
          grid: Mapping[str, Sequence[Any]] | Sequence[str], out: str | Path,
          overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
          device: str | None = None, seed: int | None = None, jobs: int = 1,
          relax: bool = False, quiet: bool | None = True, plots: bool = True):
    """Run ``solver`` on ``model`` at every point of ``grid`` (``{"rho": [0.3, 0.5], "seed":
    [0, 1]}`` or ``["rho=0.3,0.5", "seed=0,1"]``: ``seed`` or any ``overrides`` key per axis),
    one run folder per point under ``out`` (``out/rho=0.5,seed=1``), ``jobs`` at a time in
    separate processes; write the table (seeds averaged) and plots of :func:`compare` there.
    ``overrides`` hold for every point. Calling it again with the same arguments resumes: it
    skips finished points, continues interrupted ones, and refuses an ``out`` made by another
    sweep. Returns a :class:`ocdl.run.sweep.SweepResult` (a :class:`CompareResult` with
    ``done[point]``: ``ran``, ``resumed``, ``skipped`` or ``failed``)."""
    from .run.sweep import run_sweep
    return run_sweep(model, solver, grid=grid, out=out, overrides=overrides, epochs=epochs,
                     device=device, seed=seed, jobs=jobs, relax=relax, quiet=quiet, plots=plots)


def evaluate(run_dir: str | Path, *, controls: str = "auto", split: str = "test",
             device: str | None = None, recalibrate_bn: bool = False,
             model: str | Path | None = None) -> Evaluation:
    """Evaluate the trained network of the run folder ``run_dir`` on ``split`` (``test``,
    ``valid`` or ``train``, never augmented): an :class:`Evaluation` with the mean terminal loss,
    the accuracy and the non-zero fraction. ``controls``: ``final`` (``controls.pt``), ``best``
    (``best.pt``), ``last`` (``last.pt``) or ``auto`` (final if the run finished, else last).
    ``recalibrate_bn``: evaluate again with every BatchNorm's running statistics recomputed from
    the clean training images (``Evaluation.recalibrated``). The run folder is only read.
    ``run_dir`` may also be a file of :func:`export` (packed, torch, safetensors, onnx): it is
    scored through the file itself (:mod:`ocdl.deploy.evaluate`), with the spec it carries or
    ``model`` (a spec, shipped model or run folder) for a file without one."""
    if Path(run_dir).is_file():
        if controls != "auto" or recalibrate_bn:
            from .errors import ConfigError
            raise ConfigError(f"{run_dir} is an exported file: it holds one set of controls and "
                              "fixed statistics; leave out --controls and --recalibrate-bn")
        from .deploy.evaluate import evaluate_file
        return evaluate_file(run_dir, split=split, device=device, model=model)
    if model is not None:
        from .errors import ConfigError
        raise ConfigError("--model gives the spec of an exported file; a run folder has its own")
    return evaluate_run(run_dir, controls=controls, split=split, device=device,
                        recalibrate_bn=recalibrate_bn)


def export(run_dir: str | Path, *, format: str = "packed", out: str | Path | None = None,
           controls: str = "auto", float16: bool = False) -> Path:
    """Write the trained network of the run folder ``run_dir`` as a file to deploy (what
    ``ocdl export`` does): ``format`` ``packed`` (ocdl's compact format, docs/packed-format.md;
    ``float16``: real parameters in float16), ``torch`` (the module's state dict by
    ``torch.save``, the spec in ``<out>.yaml``), ``safetensors`` or ``onnx``; ``controls`` as
    for :func:`evaluate`; ``out`` default ``<run folder name><suffix>``. Returns the path;
    ``ocdl.deploy.load`` reads a packed file back, ``ocdl evaluate FILE`` scores any of them
    (:mod:`ocdl.deploy`). The run folder is only read."""
    from .deploy import export as _export
    return _export(run_dir, format=format, out=out, controls=controls, float16=float16)


def load_trained(run_dir: str | Path, *, controls: str = "auto",
                 device: str | None = None) -> "torch.nn.Module":
    """The trained network of the run folder ``run_dir`` as a plain ``torch.nn.Module`` in eval
    mode (``controls`` as for :func:`evaluate`; ``device`` default ``auto``): x_0 ↦ x_T, the
    outputs ``ocdl evaluate`` scores, with the trained controls and BatchNorm statistics as its
    parameters and buffers. A chain is an ``nn.Sequential`` named by the stages (``fc1.weight``,
    ``bn1.running_mean`` in its ``state_dict()``); see :meth:`ocdl.system.System.to_module`.
    It computes in float32 without autocast, also for a run trained with ``run.amp``. The run
    folder is only read."""
    system, _ = load_system(run_dir, controls=controls, device=device)
    return system.to_module()


def load_system(run_dir: str | Path, *, controls: str = "auto", device: str | None = None):
    """The compiled system of the run folder ``run_dir`` with its trained controls (``controls``
    as for :func:`evaluate`) and the run's data feeders (not augmented): ``(system, feeders)``.
    ``system.predict(x)`` gives the network's outputs x_T in evaluation mode; the solvers,
    ``system.forward`` and ``system.costates`` work on it as in training."""
    system, feeders, _ = _load_trained(run_dir, controls, device)
    return system, feeders
