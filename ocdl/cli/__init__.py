"""The ``ocdl`` command line: ``explain``, ``schema``, ``solve``, ``compare``, ``compare-runs``,
``sweep``, ``evaluate``, ``export``, ``import-torch``, ``data``, ``check``, ``models``,
``recipes``, ``solvers``.

Every user error (:class:`ocdl.errors.OcdlError`) is printed as one line on stderr and the
command exits non-zero, without a traceback; set ``OCDL_DEBUG=1`` to see tracebacks.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import DistributedError, OcdlError
from .spec_warnings import spec_warnings_as_lines

# subcommand modules: each defines a click command or group named like the attribute
_SUBCOMMANDS = [("ocdl.cli.explain_cmd", "explain"), ("ocdl.cli.explain_cmd", "schema"),
                ("ocdl.cli.solve_cmd", "solve"), ("ocdl.cli.solve_cmd", "compare"),
                ("ocdl.cli.solve_cmd", "compare_runs"), ("ocdl.cli.sweep_cmd", "sweep"),
                ("ocdl.cli.evaluate_cmd", "evaluate"), ("ocdl.cli.export_cmd", "export"),
                ("ocdl.cli.data_cmd", "data"), ("ocdl.cli.check_cmd", "check"),
                ("ocdl.cli.catalog_cmd", "models"), ("ocdl.cli.catalog_cmd", "recipes"),
                ("ocdl.cli.catalog_cmd", "solvers"), ("ocdl.cli.import_cmd", "import_torch")]


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            with spec_warnings_as_lines():
                return super().invoke(ctx)
        except OcdlError as e:
            if os.environ.get("OCDL_DEBUG"):
                raise
            if _echoes(e):
                click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
            if os.environ.get("OCDL_DEBUG") or not _out_of_memory(e):
                raise
            what = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            click.echo(f"error: out of memory ({what}); use a smaller data.batch_size or model, "
                       "or another --device", err=True)
            sys.exit(2)


def _echoes(e: OcdlError) -> bool:
    """Does this process print the error? In a data-parallel job (torchrun sets ``RANK``) an
    error every rank meets alike is printed by rank 0 only; a lost process
    (:class:`DistributedError`) by the rank that saw it."""
    return os.environ.get("RANK", "0") == "0" or isinstance(e, DistributedError)


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" \
        or "out of memory" in str(e).lower()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ocdl")
def cli() -> None:
    """ocdl: deep networks as discrete-time optimal control problems.

    \b
    Exit codes:
      0    done
      1    a check failed (ocdl check disagrees with casadi; a compare run did not complete)
      2    a user error (bad spec, setting, file or dataset; folder in use; out of memory):
           one line on stderr, OCDL_DEBUG=1 shows the traceback
      3    the run diverged (NaN or inf); the last good checkpoint is kept
      130  interrupted (Ctrl-C); a checkpoint was saved, ocdl solve --resume DIR continues
    """


for _module, _attr in _SUBCOMMANDS:
    try:
        cli.add_command(getattr(importlib.import_module(_module), _attr))
    except ModuleNotFoundError as _e:  # a subcommand module not written yet
        if _e.name != _module:
            raise


def main() -> None:
    cli(prog_name="ocdl")
