"""``ocdl explain MODEL`` and ``ocdl schema``."""
from __future__ import annotations

import json

import click

from ..models import resolve_model
from ..explain import describe, write_graph
from ..modelspec import load_spec
from ..modelspec.schema import json_schema


@click.command()
@click.argument("model")
@click.option("--graph", "graph", type=click.Path(dir_okay=False),
              help="Also write the model's DAG to this file (.png, .svg, .pdf or .dot).")
@click.option("--latex", is_flag=True,
              help="For an equation-defined model, print the equations as LaTeX.")
def explain(model: str, graph: str | None, latex: bool) -> None:
    """Show the stages of MODEL (a spec file or a shipped model's name): shapes, control sets,
    parameters, FLOPs, T and totals; for an equation-defined model also its Hamiltonian, costate
    equations and stationarity condition."""
    from rich.console import Console
    system = load_spec(resolve_model(model)).compile(device="cpu")
    shown = describe(system, latex=latex)
    if isinstance(shown, str):  # plain text (equations, LaTeX): no rich markup
        click.echo(shown)
    else:
        Console(width=160).print(shown)
    if graph:
        out = write_graph(system, graph)
        click.echo(f"graph written to {out}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of model spec files (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2))
