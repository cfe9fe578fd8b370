"""How the command line shows a model spec's deprecation warnings: one line each."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import click

from ..errors import SpecDeprecationWarning


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
