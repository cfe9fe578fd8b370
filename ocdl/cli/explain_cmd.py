"""``ocdl explain MODEL`` and ``ocdl schema``."""
from __future__ import annotations

import json

import click

from .output import console, echo_json


@click.command()
@click.argument("model")
@click.option("--graph", "graph", type=click.Path(dir_okay=False),
              help="Also write the model's DAG to this file (.png, .svg, .pdf or .dot).")
@click.option("--latex", is_flag=True,
              help="For an equation-defined model, print the equations as LaTeX.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object (stages, shapes, sets, sizes, costs; "
                   "for an equation-defined model its equations).")
def explain(model: str, graph: str | None, latex: bool, as_json: bool) -> None:
    """Show the stages of MODEL (a spec file or a shipped model's name): shapes, control sets,
    parameters, FLOPs, T and totals; for an equation-defined model also its Hamiltonian, costate
    equations and stationarity condition."""
    from ..explain import describe, summary, write_graph
    from ..modelspec import load_spec
    from ..models import resolve_model
    system = load_spec(resolve_model(model)).compile(device="cpu")
    if as_json:
        echo_json(summary(system))
        if graph:
            click.echo(f"graph written to {write_graph(system, graph)}", err=True)
        return
    shown = describe(system, latex=latex)
    if isinstance(shown, str):  # plain text (equations, LaTeX): no rich markup
        click.echo(shown)
    else:
        console().print(shown)
    if graph:
        out = write_graph(system, graph)
        click.echo(f"graph written to {out}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of model spec files (for editors)."""
    from ..modelspec.schema import json_schema
    click.echo(json.dumps(json_schema(), indent=2))
