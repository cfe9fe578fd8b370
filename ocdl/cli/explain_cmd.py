"""``ocdl explain MODEL.yaml`` and ``ocdl schema``."""
from __future__ import annotations

import json

import click

from ..explain import render_table, write_graph
from ..spec import load_spec
from ..spec.schema import json_schema


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--graph", "graph", type=click.Path(dir_okay=False),
              help="Also write the model's DAG to this file (.png, .svg, .pdf or .dot).")
@click.option("--latex", is_flag=True,
              help="For an equation-defined model, print the equations as LaTeX.")
def explain(model: str, graph: str | None, latex: bool) -> None:
    """Show the stages of MODEL: shapes, control sets, parameters, FLOPs, T and totals; for an
    equation-defined model also its Hamiltonian, costate equations and stationarity condition."""
    from rich.console import Console
    system = load_spec(model).compile(device="cpu")
    if getattr(system, "model", None) is not None:  # equation-defined
        from ..explain import equations_text
        click.echo(equations_text(system, latex=latex))
        if graph:
            out = write_graph(system, graph)
            click.echo(f"graph written to {out}")
        return
    Console(width=160).print(render_table(system))
    if graph:
        out = write_graph(system, graph)
        click.echo(f"graph written to {out}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of model spec files (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2))
