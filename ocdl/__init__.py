"""ocdl: deep networks as discrete-time optimal control problems.

Declare a network as a control system (YAML or the Python DSL), compile it into state and
costate dynamics on torch, and train its controls with Pontryagin solvers (MSA, E-MSA) or
gradient baselines. See DESIGN.md for the mathematics and README.md for a tour.
"""
from __future__ import annotations

from .compiler import compile_spec
from .controls import Binary, Box, ControlSet, Levels, Real, Ternary
from .errors import (ControlSetError, DataError, DivergenceError, OcdlError, ShapeError,
                     SolverError, SpecError)
from .modelspec import ModelSpec, load_spec, loads_spec
from .modelspec.dsl import Model
from .system import Costates, States, System

__version__ = "0.1.0"


def compile(spec: ModelSpec | str, device: str = "cpu", dtype=None, seed: int = 0) -> System:
    """Compile a spec (or the path of a YAML spec) into a :class:`System`."""
    if isinstance(spec, str):
        spec = load_spec(spec)
    return compile_spec(spec, device=device, dtype=dtype, seed=seed)


def __getattr__(name: str):  # solve/compare live in ocdl.api (lazy: it pulls in data and plots)
    if name in ("solve", "compare"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'ocdl' has no attribute {name!r}")


__all__ = ["Binary", "Box", "ControlSet", "ControlSetError", "Costates", "DataError",
           "DivergenceError", "Levels", "Model", "ModelSpec", "OcdlError", "Real", "ShapeError",
           "SolverError", "SpecError", "States", "System", "Ternary", "compile", "compile_spec",
           "load_spec", "loads_spec"]
