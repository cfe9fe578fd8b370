"""Solvers (the *how*): MSA, E-MSA and the baselines behind one protocol, found by name.

    from ocdl.solvers import make_solver
    solver = make_solver("emsa-ternary", {"rho": 0.3})
    state = solver.init(system)
    state, metrics = solver.step(system, state, x, y)

Presets live in the repository's ``solvers/*.yaml``; see :mod:`ocdl.solvers.registry`.
"""
from . import binaryconnect, bop, emsa, gradient, msa, twn  # noqa: F401  (registration)
from .base import SOLVERS, Solver, register_solver
from .registry import list_solvers, make_solver, solver_info

__all__ = ["SOLVERS", "Solver", "list_solvers", "make_solver", "register_solver", "solver_info"]
