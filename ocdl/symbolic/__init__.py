"""Equation-defined systems: sympy expressions → Hamiltonians, costate equations and batched
torch functions (:mod:`.model`), compiled into a :class:`~ocdl.system.System` (:mod:`.system`)."""
from .model import SymbolicModel
from .system import EquationOp, EquationSystem, compile_equations

__all__ = ["EquationOp", "EquationSystem", "SymbolicModel", "compile_equations"]
