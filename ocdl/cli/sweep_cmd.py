"""``ocdl sweep``: one solver on one model over a grid of settings, one run folder per point,
a table and plots; rerun to resume (see :mod:`ocdl.run.sweep`)."""
from __future__ import annotations

import sys

import click

from ..errors import RunInterrupted
from .solve_cmd import DEVICE_HELP, report_compare


@click.command("sweep")
@click.argument("model")
@click.option("--solver", metavar="NAME|FILE",
              help="solver preset or preset file (default: the E-MSA preset for the model's "
                   "control sets)")
@click.option("--grid", "grid", multiple=True, required=True, metavar="KEY=V1,V2,…",
              help="an axis of the grid: seed (the run's seed) or any --set key, e.g. "
                   "rho=0.3,0.5,1.0 or data.limit=1000,2000; repeatable (the points are the "
                   "product of the axes)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="a setting of every point, as for solve; repeatable")
@click.option("--epochs", type=click.IntRange(min=1), help="epochs per run (default 10)")
@click.option("--seed", type=click.IntRange(min=0),
              help="the seed of every point when seed is not an axis (default 0)")
@click.option("--device", help=DEVICE_HELP)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="points run at a time, each in its own process")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="the sweep's folder: one run folder per point, the table and the plots; "
                   "the same command with the same DIR resumes the sweep")
@click.option("--relax", is_flag=True, help="train the model with its discrete control sets "
              "made real (e.g. adam as a real-weight reference)")
@click.option("--quiet", "-q", is_flag=True, help="no progress lines")
@click.option("--json", "as_json", is_flag=True, help="print the table's rows and each point's "
              "run record as one JSON object on stdout")
def sweep(model, solver, grid, sets, epochs, seed, device, jobs, out, relax, quiet,
          as_json) -> None:
    """Run SOLVER on MODEL at every point of a grid of settings: one run folder per point under
    DIR (named like rho=0.5,seed=1), and a table (compare.md, compare.csv; seeds averaged) and
    plots. Running the same command again skips finished points and resumes interrupted ones.

    \b
    Examples:
      ocdl sweep quickstart --solver emsa-ternary --grid rho=0.1,0.25,0.5 --grid seed=0,1,2 \\
          --epochs 10 --out runs/rho-sweep
      ocdl sweep quickstart --solver adam --relax --grid lr=1e-3,3e-3 --jobs 2 --out runs/lr
    """
    from ..api import sweep as api_sweep
    from ..run.overrides import parse_sets
    try:
        result = api_sweep(model, solver, grid=list(grid), overrides=parse_sets(sets),
                           epochs=epochs, seed=seed, device=device, jobs=jobs, out=out,
                           relax=relax, quiet=quiet)
    except RunInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(130)
    counts = {k: sum(v == k for v in result.done.values())
              for k in ("ran", "resumed", "skipped", "failed")}
    report_compare(result, as_json,
                   ", ".join(f"{n} {k}" for k, n in counts.items() if n) +
                   f"; runs, table (compare.md, compare.csv) and plots in {result.out_dir}")
    failed = [f"{r.run_dir.name}" for rs in result.runs.values() for r in rs
              if r.status != "completed"]
    if failed:
        click.echo(f"not completed: {', '.join(failed)}", err=True)
        sys.exit(1)
