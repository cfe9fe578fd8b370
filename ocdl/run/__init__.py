"""The run loop and what surrounds it: configuration, checkpoints, metrics, results, plots.

Use it through :func:`ocdl.api.solve` / :func:`ocdl.api.compare` or the ``ocdl solve`` and
``ocdl compare`` commands.
"""
from ..errors import ConfigError, RunInterrupted
from .loop import Loop
from .options import DEFAULT_EPOCHS, RunOptions
from .overrides import parse_sets
from .results import CompareResult, RunResult

__all__ = ["ConfigError", "CompareResult", "DEFAULT_EPOCHS", "Loop", "RunInterrupted",
           "RunOptions", "RunResult", "parse_sets"]
