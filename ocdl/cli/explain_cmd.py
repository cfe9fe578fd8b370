"""``ocdl explain MODEL`` and ``ocdl schema``."""
from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator

import click

from ..errors import SpecDeprecationWarning
from ..models import resolve_model
from ..explain import describe, write_graph
from ..modelspec import load_spec
from ..modelspec.schema import json_schema


@contextlib.contextmanager
def spec_warnings_as_lines() -> Iterator[None]:
    """Show each :class:`SpecDeprecationWarning` as one line ``warning: file:line: …`` on stderr
    (other warnings as Python shows them)."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SpecDeprecationWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


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
    with spec_warnings_as_lines():
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
