"""Solvers (the *how*): MSA, E-MSA and the baselines behind one protocol, found by name.

    from ocdl.solvers import make_solver
    solver = make_solver("emsa-ternary", {"rho": 0.3})       # or {"sparsity.target": 0.02}
    state = solver.init(system)
    state, metrics = solver.step(system, state, x, y)

A solver is a composition of parts (:mod:`.settings`: quantizers, schedules, ρ control, the
sparsity target, the Hamiltonian argmax, inner maximisation, execution strategies), one module
each; the solvers themselves live in :mod:`.methods`, one module each, found by scanning that
package (and the entry-point group ``ocdl.solvers``); presets are this package's
``presets/*.yaml``. See :mod:`.registry` and docs/adding-a-solver.md.
"""
from .base import SOLVERS, Solver, register_solver
from .registry import discover, list_solvers, make_solver, solver_info

discover()

__all__ = ["SOLVERS", "Solver", "list_solvers", "make_solver", "register_solver", "solver_info"]
