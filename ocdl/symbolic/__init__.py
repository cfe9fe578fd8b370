"""Equation-defined systems: a safe parser of their expressions (:mod:`.expressions`, with the
bounds of :mod:`.expr_bounds`), sympy expressions → Hamiltonians, costate equations and batched
torch or casadi functions (:mod:`.derivatives`, :mod:`.backends`), compiled into a
:class:`~ocdl.system.System` (:mod:`.system`) and fed to the run loop (:mod:`.feed`).

Its names are imported on first use, so that checking an expression does not load torch's
compiled system code, and reading a network spec does not load sympy.
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_WHERE = {"SymbolicModel": "derivatives", "EquationOp": "system", "EquationSystem": "system",
          "compile_equations": "system"}

__getattr__ = lazy_attributes(__name__, _WHERE)


__all__ = ["EquationOp", "EquationSystem", "SymbolicModel", "compile_equations"]
