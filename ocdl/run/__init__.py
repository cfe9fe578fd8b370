"""The run loop and what surrounds it: configuration, checkpoints, metrics, results, plots.

Use it through :func:`ocdl.api.solve` / :func:`ocdl.api.compare` or the ``ocdl solve`` and
``ocdl compare`` commands.
"""
from .config import DEFAULT_EPOCHS, ConfigError, RunOptions, parse_sets
from .loop import Loop, RunInterrupted
from .results import CompareResult, RunResult

__all__ = ["ConfigError", "CompareResult", "DEFAULT_EPOCHS", "Loop", "RunInterrupted",
           "RunOptions", "RunResult", "parse_sets"]
