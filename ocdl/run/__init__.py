"""The run loop and what surrounds it: configuration, checkpoints, metrics, results, plots.

Use it through :func:`ocdl.api.solve` / :func:`ocdl.api.compare` or the ``ocdl solve`` and
``ocdl compare`` commands.
"""
from ..errors import ConfigError, RunInterrupted
from ..lazy import lazy_attributes

# imported on first use: the loop and its options load torch
__getattr__ = lazy_attributes(__name__, {
    "Loop": "loop", "DEFAULT_EPOCHS": "options", "RunOptions": "options",
    "parse_sets": "overrides", "CompareResult": "results", "RunResult": "results"})

__all__ = ["ConfigError", "CompareResult", "DEFAULT_EPOCHS", "Loop", "RunInterrupted",
           "RunOptions", "RunResult", "parse_sets"]
