"""The solvers, one module each: every module here is imported when :mod:`ocdl.solvers` is, and
its ``@register_solver`` classes join the registry (no list to keep; see
:func:`ocdl.solvers.registry.discover`). Each solver is a composition of the parts in
:mod:`ocdl.solvers` (quantizers, schedules, ρ control, sparsity target, Hamiltonian argmax,
execution strategies …) with one alias table from its flat setting names to their blocks."""
