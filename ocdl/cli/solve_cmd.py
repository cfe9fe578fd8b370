"""``ocdl solve`` and ``ocdl compare``: run the loop from the command line (see :mod:`ocdl.api`).

Errors are :class:`ocdl.errors.OcdlError` and become one line on stderr with a non-zero exit
code (the main group does that); Ctrl-C saves a checkpoint, says how to resume, exits 130.
"""
from __future__ import annotations

import os
import sys

import click

from ..errors import ConfigError, RunInterrupted
from .output import echo_json

DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: auto = cuda when available)"
REACH_HELP = ("a test accuracy (0.9 or 90); the table adds the training time and epoch at which "
              "each run first reached it; repeatable")


def report_compare(result, as_json: bool, where: str) -> None:
    """A compare's table and where its files are; with ``--json`` one JSON object on stdout
    (``CompareResult.to_dict``) and the line on stderr."""
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.format_table())
    click.echo(where, err=as_json)


def _interrupted(e: RunInterrupted) -> None:
    if os.environ.get("RANK", "0") == "0":  # a data-parallel job: rank 0 reports
        click.echo(str(e), err=True)
    sys.exit(130)


@click.command("solve")
@click.argument("model", required=False, metavar="[MODEL]")
@click.option("--recipe", metavar="NAME|FILE",
              help="start from a recipe's model, solver, epochs, device and settings (ocdl "
                   "recipes lists them); MODEL and the options given replace the recipe's, "
                   "--set key by key")
@click.option("--solver", "solver", metavar="NAME|FILE",
              help="solver preset (emsa-ternary, adam, …) or preset YAML file; default: the "
                   "E-MSA preset for the model's control sets")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="a setting: solver hyperparameter (rho=0.3), data option "
                   "(data.batch_size=50, data.limit=2000) or loop option (run.log_every=10); "
                   "repeatable; values are YAML scalars")
@click.option("--epochs", type=click.IntRange(min=1), help="number of epochs (default 10)")
@click.option("--device", help=DEVICE_HELP)
@click.option("--out", type=click.Path(file_okay=False),
              help="run folder (default runs/<model>-<solver>-<timestamp>)")
@click.option("--resume", type=click.Path(file_okay=False), metavar="DIR",
              help="continue the run in DIR from its last checkpoint")
@click.option("--like", type=click.Path(), metavar="RUN",
              help="start a new run with the settings of the run folder RUN (or its "
                   "config.yaml): its model, solver, --set settings and loop options, each "
                   "replaced by what this command gives")
@click.option("--seed", type=click.IntRange(min=0), help="seed of the controls' "
              "initialisation, the global RNGs and the solver's own draws (default 0); the "
              "valid split, batch order and augmentation follow data.seed: add --set "
              "data.seed=S to change them too")
@click.option("--relax", is_flag=True, help="make the model's discrete control sets real "
              "(same network and costs), e.g. to train a ternary model's real-weight "
              "reference with adam")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar or epoch lines")
@click.option("--json", "as_json", is_flag=True, help="at the end, print the run's summary "
              "(summary.json and the run folder) as one JSON object on stdout instead of the "
              "human lines; progress stays on stderr")
@click.option("--nproc", type=click.IntRange(min=1), metavar="N",
              help="train data-parallel on N processes of this machine (launches torchrun; "
                   "data.batch_size is per process; one GPU each on CUDA)")
def solve(model, recipe, solver, sets, epochs, device, out, resume, like, seed, relax,
          quiet, as_json, nproc) -> None:
    """Train MODEL (a YAML model spec, or a shipped model's name) with a solver; write a run
    folder and print a summary.

    \b
    Examples:
      ocdl solve quickstart --solver emsa-ternary
      ocdl solve quickstart --solver twn --set lr=3e-3 --set data.limit=2000
      ocdl solve my-net.yaml --solver adam --relax
      ocdl solve --recipe mnist-ternary-20 --epochs 5
      ocdl solve --resume runs/quickstart-emsa-ternary-20250101-120000 --epochs 20
      ocdl solve --like runs/quickstart-emsa-ternary-20250101-120000 --seed 1 --set rho=0.5
    """
    if nproc is not None and nproc > 1:
        from .launch import launch_solve
        sys.exit(launch_solve(nproc, model=model, recipe=recipe, solver=solver, sets=sets,
                              epochs=epochs, device=device, out=out, resume=resume, like=like,
                              seed=seed, relax=relax, quiet=quiet, as_json=as_json))
    from ..api import solve as api_solve
    from ..run.overrides import parse_sets
    overrides = parse_sets(sets)
    if model is None and resume is None and like is None and recipe is None:
        raise ConfigError("give a MODEL to solve (a spec file or a shipped model's name: ocdl "
                          "models), --recipe NAME (ocdl recipes), --resume DIR to continue a "
                          "run, or --like RUN to start a new one with a recorded run's settings")
    if resume is not None and out is not None:
        raise ConfigError("--out and --resume exclude each other: a resumed run stays in its "
                          "folder")
    try:
        result = api_solve(model, solver, overrides=overrides, epochs=epochs, device=device,
                           out=out, seed=seed, resume=resume, quiet=quiet, relax=relax,
                           like=like, recipe=recipe)
    except RunInterrupted as e:
        _interrupted(e)
        return
    if os.environ.get("RANK", "0") != "0":  # a data-parallel job: rank 0 reports
        return
    if as_json:
        echo_json(result.summary())
    else:
        click.echo(result.describe())


@click.command("compare")
@click.argument("model")
@click.option("--solvers", required=True, metavar="A,B,…",
              help="comma-separated solver presets or preset files, e.g. emsa-ternary,adam,twn")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="runs per solver, with seeds SEED, SEED+1, …")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="first seed")
@click.option("--epochs", type=click.IntRange(min=1), help="epochs per run (default 10)")
@click.option("--device", help=DEVICE_HELP)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="settings as for solve; a solver setting goes to every solver that has it")
@click.option("--out", type=click.Path(file_okay=False),
              help="folder of the comparison (default runs/compare-<model>-<timestamp>)")
@click.option("--relax/--no-relax", default=True, show_default=True,
              help="run real-only solvers (adam, sgd) on the model with real weights in place of "
                   "its discrete sets, labelled '<solver> [real]'")
@click.option("--reach", multiple=True, metavar="ACC", help=REACH_HELP)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar or epoch lines")
@click.option("--json", "as_json", is_flag=True, help="print the table's rows and each "
              "run's record as one JSON object on stdout (progress stays on stderr)")
def compare(model, solvers, seeds, seed, epochs, device, sets, out, relax, reach,
            quiet, as_json) -> None:
    """Run several solvers (and seeds) on MODEL (a spec file or a shipped model's name); print
    a table and write plots.

    \b
    Example:
      ocdl compare quickstart --solvers emsa-ternary,adam,twn --seeds 3 --epochs 5
    """
    from ..api import compare as api_compare
    from ..run.overrides import parse_sets
    overrides = parse_sets(sets)
    try:
        result = api_compare(model, solvers, seeds=seeds, seed=seed, epochs=epochs,
                             device=device, out=out, overrides=overrides, quiet=quiet,
                             relax=relax, reach=reach)
    except RunInterrupted as e:
        _interrupted(e)
        return
    report_compare(result, as_json, f"runs, table (compare.md, compare.csv) and plots in "
                                    f"{result.out_dir}")
    failed = [f"{r.solver} seed {r.seed}" for rs in result.runs.values() for r in rs
              if r.status not in ("completed",)]
    if failed:
        click.echo(f"not completed: {', '.join(failed)}", err=True)
        sys.exit(1)


@click.command("compare-runs")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--labels", metavar="A,B,…",
              help="one label per run folder (default: the folder names); runs sharing a label "
                   "are averaged like seeds")
@click.option("--label", "label_list", multiple=True, metavar="TEXT",
              help="the same one at a time, in the order of RUNS (for labels with commas)")
@click.option("--out", type=click.Path(file_okay=False),
              help="folder of the table and plots (default runs/compare-runs-<timestamp>)")
@click.option("--reach", multiple=True, metavar="ACC", help=REACH_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the table's rows and each "
              "run's record as one JSON object on stdout (progress stays on stderr)")
def compare_runs(runs, labels, label_list, out, reach, as_json) -> None:
    """Gather finished RUNS (folders of ocdl solve or compare, made with any settings, on any
    device) into one table and the plots of ocdl compare.

    \b
    Example:
      ocdl compare-runs runs/mnist-binary-50 runs/mnist-binary-20 --labels "50 epochs,20 epochs"
      ocdl compare-runs runs/a runs/b --reach 0.99   # time to 99 % test accuracy
    """
    from ..api import compare_runs as api_compare_runs
    if labels and label_list:
        raise click.UsageError("give the labels with --labels A,B or with --label A --label B, "
                               "not both")
    names = [x.strip() for x in labels.split(",")] if labels else list(label_list) or None
    result = api_compare_runs(runs, labels=names, out=out, reach=reach)
    report_compare(result, as_json, f"table (compare.md, compare.csv) and plots in "
                                    f"{result.out_dir}")
