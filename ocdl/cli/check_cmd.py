"""``ocdl check MODEL``: solve a small model with ocdl and with casadi and compare
(see :mod:`ocdl.check.runner`). Exits 1, with one line saying so, when the objective gap exceeds
the tolerance."""
from __future__ import annotations

import sys

import click

from .output import console, echo_json


@click.command("check")
@click.argument("model")
@click.option("--solver", "solver", metavar="NAME|FILE",
              help="ocdl solver preset (default: emsa-ocp for real/box controls, "
                   "emsa-ocp-discrete for finite sets, adam with lr=0.01 for networks with "
                   "real controls)")
@click.option("--tol", type=float, default=1e-4, show_default=True,
              help="largest accepted objective gap |J_ocdl − J_casadi| / max(1, |J_casadi|)")
@click.option("--iters", type=click.IntRange(min=0), default=None,
              help="ocdl solver iterations on the full batch (default 200; 6000 for networks)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="a solver setting, e.g. rho=1.0 (repeatable)")
@click.option("--perturb", type=float, default=0.0, hidden=True,
              help="add this to ocdl's controls after solving (to see the check fail)")
@click.option("--json", "as_json", is_flag=True,
              help="print the report as one JSON object (exit codes unchanged)")
def check(model, solver, tol, iters, sets, perturb, as_json) -> None:
    """Check ocdl's solution of MODEL (a spec file or a shipped model's name) against casadi
    (IPOPT, or bonmin for finite sets)."""
    from ..check import check as run_check, render
    from ..models import resolve_model
    from ..run.overrides import parse_sets
    overrides = parse_sets(sets) if sets else {}
    solver_over = {k: v for k, v in overrides.items() if "." not in k}
    report = run_check(resolve_model(model), solver, iters=iters, tol=tol,
                       overrides=solver_over, perturb=perturb)
    if as_json:
        echo_json(report.to_dict())
    else:
        console().print(render(report))
    if not report.ok:
        click.echo(f"check failed: objective gap {report.gap:.3e} exceeds the tolerance "
                   f"{tol:g} (ocdl J = {report.ocdl.J:.10g}, casadi J = {report.casadi.J:.10g})",
                   err=True)
        sys.exit(1)
    click.echo(f"check passed: objective gap {report.gap:.3e} ≤ {tol:g}", err=as_json)
