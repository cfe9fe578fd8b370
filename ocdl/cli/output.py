"""How commands print: rich tables that are never cut when piped, and one JSON object for
``--json``."""
from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

#: the width a table may take when the output is not a terminal (a file, a pipe): rich would
#: otherwise assume 80 columns and cut cells ("fashion-mni…")
PIPE_WIDTH = 10_000


def console(*, stderr: bool = False):
    """A rich Console on stdout (or stderr): as wide as the terminal, or, when the stream is not
    a terminal, wide enough that no table is cut or wrapped."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def echo_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout (NaN and infinities as null, so that any
    JSON reader takes it)."""
    click.echo(json.dumps(_finite(value), default=str))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
