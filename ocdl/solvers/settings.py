"""Solver settings: one block per part, and the flat names that alias them.

A solver is a composition of parts (a quantizer, schedules, the ρ error control, the sparsity
target, the Hamiltonian argmax, an execution strategy …), and each part owns a block of settings
with its defaults, allowed values and range checks (:class:`Part`). A preset writes them nested:

    error_control: {rho: 0.25, adaptive: false}
    sparsity: {target: 0.0195, start: 0.5, end: 0.8}

Every solver has one alias table, flat name → nested path (``nonzero_target`` →
``sparsity.target``; top-level settings such as ``sets`` and ``seed`` are their own path). The
flat names are what run records hold (``config.yaml``'s ``solver.hp``) and what ``--set`` takes,
so a record written before the parts existed still reruns; a dotted path (``sparsity.target``)
is accepted wherever a flat name is. :class:`Layout` turns any mix of the three forms into flat
names (``Solver.hp``) and back into blocks (``Solver.settings``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..errors import SolverError, did_you_mean

class Require:
    """``require(cond, key, what)``: raise a :class:`SolverError` naming the setting ``key`` of a
    block (the part's own name; the message shows the solver's flat name, :meth:`name`) unless
    ``cond``."""

    def __init__(self, solver: str, block: str, values: Mapping[str, Any],
                 flat_of: Callable[[str], str]):
        self.solver, self.block, self.values, self.flat_of = solver, block, values, flat_of

    def name(self, key: str) -> str:
        """The name users write for the block's setting ``key`` (flat when it has one)."""
        return self.flat_of(f"{self.block}.{key}")

    def __call__(self, cond: bool, key: str, what: str) -> None:
        if not cond:
            raise SolverError(f"solver '{self.solver}' setting '{self.name(key)}' {what}, got "
                              f"{self.values[key]!r}")


class Part:
    """A part's settings: ``DEFAULTS`` (its own name → default value, whose type is the
    setting's type), ``CHOICES`` (name → allowed values), ``DOCS`` (name → one line that says
    what the setting does, for ``ocdl solvers``) and :meth:`check` (range checks)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {}
    DOCS: ClassVar[dict[str, str]] = {}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        """Range checks of the block ``s`` (every setting of :attr:`DEFAULTS` present)."""


def positive(s: Mapping[str, Any], require: Require, *keys: str) -> None:
    """Check that each of ``keys`` is > 0."""
    for k in keys:
        require(s[k] > 0, k, "must be > 0")


def fraction_or_null(s: Mapping[str, Any], require: Require, key: str) -> None:
    """Check a setting that is null or a number in (0, 1] (the ``*_end`` schedules)."""
    v = s[key]
    require(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1),
            key, "must be a number in (0, 1] or null")


def betas_ok(s: Mapping[str, Any], require: Require) -> None:
    """Check the Adam setting ``betas``: two numbers in [0, 1)."""
    b = s["betas"]
    require(len(b) == 2 and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in b),
            "betas", "must be two numbers in [0, 1)")


class Layout:
    """The alias table of one solver: flat name ↔ nested path (``block.key``, or a top-level
    name). Blocks are the first components of the dotted paths."""

    def __init__(self, solver: str, paths: Mapping[str, str]):
        self.solver = solver
        self.path = dict(paths)
        self.flat = {p: f for f, p in self.path.items()}
        self.blocks = {p.split(".", 1)[0] for p in self.path.values() if "." in p}

    def flatten(self, data: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
        """Settings given as blocks (``{sparsity: {target: 0.02}}``), dotted paths
        (``sparsity.target``) or flat names (``nonzero_target``), as flat names. A key that is
        both a block and a flat name is the block when its value is a mapping. Raises
        :class:`SolverError` for an unknown setting, and with ``strict`` for one given twice;
        else the later one wins (overrides merged over a run record's settings: the run layer's
        ``{**recorded, **given}`` puts the given after the recorded)."""
        out: dict[str, Any] = {}
        given: dict[str, str] = {}

        def put(key: str, value: Any) -> None:
            flat = self.path_to_flat(key)
            if strict and flat in out:
                raise SolverError(f"solver '{self.solver}' setting '{flat}' is given twice (as "
                                  f"'{given[flat]}' and '{key}'); keep one")
            out[flat], given[flat] = value, key

        for key, value in data.items():
            key = str(key)
            if key in self.blocks and (isinstance(value, Mapping) or value is None):
                for k, v in (value or {}).items():  # an empty block (``sparsity:``) sets nothing
                    put(f"{key}.{k}", v)
            else:
                put(key, value)
        return out

    def path_to_flat(self, key: str) -> str:
        """The flat name of ``key`` (a flat name or a dotted path), or a :class:`SolverError`."""
        if key in self.path:
            return key
        if key in self.flat:
            return self.flat[key]
        names = self.flat if "." in key else self.path
        nested = sorted(p for p in self.path.values() if "." in p)
        raise SolverError(f"solver '{self.solver}' has no setting '{key}'{did_you_mean(key, names)}"
                          f"; settings: {', '.join(sorted(self.path))}"
                          + (f" (nested: {', '.join(sorted(self.blocks))})" if nested else "")
                          + ("; data.<key> and run.<key> set the data and the loop" if "." in key
                             else ""))

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Flat settings as blocks: ``{block: {key: value}}`` and the top-level ones."""
        out: dict[str, Any] = {}
        for f, v in flat.items():
            head, _, key = self.path[f].partition(".")
            if key:
                out.setdefault(head, {})[key] = v
            else:
                out[head] = v
        return out
