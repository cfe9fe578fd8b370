"""ocdl: deep networks as discrete-time optimal control problems.

Declare a network as a control system (YAML or the Python DSL), compile it into state and
costate dynamics on torch, and train its controls with Pontryagin solvers (MSA, E-MSA) or
gradient baselines. See DESIGN.md for the mathematics and README.md for a tour.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (ControlSetError, DataError, DivergenceError, OcdlError, ShapeError,
                     SolverError, SpecError)
from .lazy import lazy_attributes

if TYPE_CHECKING:
    from .modelspec import ModelSpec
    from .system import System

__version__ = "0.1.0"

# imported on first use, so that `import ocdl` (and `ocdl --help`) does not load torch
_WHERE = {"compile_spec": "compiler",
          "Binary": "controls", "Box": "controls", "ControlSet": "controls", "Levels": "controls",
          "Real": "controls", "Ternary": "controls",
          "ModelSpec": "modelspec", "load_spec": "modelspec", "loads_spec": "modelspec",
          "Model": "modelspec.dsl",
          "Costates": "system", "States": "system", "System": "system",
          "solve": "api", "compare": "api", "sweep": "api",   # the run loop, data and plots
          "from_torch": "torch_import", "ImportedModel": "torch_import",  # needs torch.fx
          "optim": "."}                                      # the torch.optim optimizers

__getattr__ = lazy_attributes(__name__, _WHERE)


def compile(spec: "ModelSpec | str", device: str = "cpu", dtype=None, seed: int = 0) -> "System":
    """Compile a spec (or the path of a YAML spec) into a :class:`System`."""
    from .compiler import compile_spec
    from .modelspec import load_spec
    if isinstance(spec, str):
        spec = load_spec(spec)
    return compile_spec(spec, device=device, dtype=dtype, seed=seed)


__all__ = ["Binary", "Box", "ControlSet", "ControlSetError", "Costates", "DataError",
           "DivergenceError", "ImportedModel", "Levels", "Model", "ModelSpec", "OcdlError",
           "Real", "ShapeError", "SolverError", "SpecError", "States", "System", "Ternary",
           "compare", "compile", "compile_spec", "from_torch", "load_spec", "loads_spec",
           "optim", "solve", "sweep"]
