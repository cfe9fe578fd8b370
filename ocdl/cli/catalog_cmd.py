"""What ocdl ships, listed: ``ocdl models`` (and ``models show NAME``), ``ocdl recipes`` (and
``recipes show NAME``) and ``ocdl solvers`` (``solvers NAME``, ``solvers --settings``)."""
from __future__ import annotations

from collections.abc import Sequence

import click


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows of text cells aligned in columns (the last one is not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]).rstrip()
                     for r in rows)


def _show(path) -> None:
    from ..modelspec.yaml_io import read_utf8
    click.echo(read_utf8(path), nl=False)


@click.group("models", invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List the shipped models (a MODEL argument takes their names); `ocdl models show NAME`
    prints one, to copy and edit: ocdl models show quickstart > my.yaml"""
    if ctx.invoked_subcommand is not None:
        return
    from ..models import model_names, model_path, model_summary
    from ..modelspec.yaml_io import read_utf8
    click.echo(columns([(n, model_summary(read_utf8(model_path(n)))) for n in model_names()]))


@models.command("show")
@click.argument("name")
def models_show(name: str) -> None:
    """Print the YAML of the shipped model NAME (or of a spec file)."""
    from ..models import resolve_model
    _show(resolve_model(name))


@click.group("recipes", invoke_without_command=True)
@click.pass_context
def recipes(ctx: click.Context) -> None:
    """List the shipped recipes (ocdl solve --recipe NAME runs one); `ocdl recipes show NAME`
    prints one, with what it measured."""
    if ctx.invoked_subcommand is not None:
        return
    from ..run.recipes import load_recipe, recipe_names
    rows = [("name", "model", "solver", "epochs", "device", "description")]
    for n in recipe_names():
        r = load_recipe(n)
        rows.append((n, r.model, r.solver or "(default)", str(r.epochs or "(default)"),
                     r.device or "", r.description))
    click.echo(columns(rows))


@recipes.command("show")
@click.argument("name")
def recipes_show(name: str) -> None:
    """Print the YAML of the shipped recipe NAME (or of a recipe file)."""
    from ..run.recipes import resolve_recipe
    _show(resolve_recipe(name))


@click.command("solvers")
@click.argument("name", required=False)
@click.option("--settings", "table", is_flag=True,
              help="print the Markdown table of every setting of every preset (the README's)")
def solvers(name: str | None, table: bool) -> None:
    """List the solver presets: name, solver class, control sets and description. With NAME,
    that preset's settings by block, each with its flat name (for --set), value and source."""
    from ..solvers import catalog
    if table and name:
        raise click.UsageError("give NAME or --settings, not both")
    if table:
        click.echo(catalog.settings_table())
    elif name:
        click.echo(catalog.render_preset(name))
    else:
        rows = [("name", "solver", "control sets", "description")]
        rows += [(i["name"], i["solver"], ", ".join(i["supports"]), i["description"])
                 for i in catalog.preset_table()]
        click.echo(columns(rows))
