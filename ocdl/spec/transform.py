"""Transformations of model specs.

:func:`relax` replaces the discrete control sets (binary, ternary, levels) by real ones, so a
full-precision baseline (Adam, SGD) can train the same architecture with the same costs; this is
how ``ocdl compare`` pits E-MSA on ternary weights against Adam on real weights.
"""
from __future__ import annotations

import dataclasses

from ..controls import ControlSet, Real
from .model import ModelSpec, StageSpec


def _relax_set(c: ControlSet) -> ControlSet:
    return Real("kaiming_uniform") if c.discrete else c


def _relax_stage(st: StageSpec) -> StageSpec:
    control = st.control
    if isinstance(control, ControlSet):
        control = _relax_set(control)
    elif isinstance(control, dict):
        control = {k: _relax_set(v) for k, v in control.items()}
    return dataclasses.replace(st, control=control,
                               stages=tuple(_relax_stage(s) for s in st.stages))


def relax(spec: ModelSpec) -> ModelSpec:
    """The same spec with every discrete control set replaced by ``real`` (kaiming-uniform init)."""
    return dataclasses.replace(spec, stages=tuple(_relax_stage(s) for s in spec.stages))


def has_discrete(spec: ModelSpec) -> bool:
    """Whether any control of the spec has a finite set."""
    def walk(stages) -> bool:
        for st in stages:
            c = st.control
            sets = c.values() if isinstance(c, dict) else ([c] if c is not None else [])
            if any(s.discrete for s in sets) or walk(st.stages):
                return True
        return False
    return walk(spec.stages)
