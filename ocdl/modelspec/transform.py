"""Transformations of a network's stages (used by :class:`ocdl.modelspec.model.NetworkSpec`).

:func:`relax_stages` replaces the discrete control sets (binary, ternary, levels) by real ones,
so that a full-precision baseline (Adam, SGD) can train the same architecture with the same
costs (``--relax``; ``ocdl compare`` pits E-MSA on ternary weights against Adam on real ones).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from ..controls import ControlSet, Real
from .model import StageSpec


def _relax_set(c: ControlSet) -> ControlSet:
    return Real("kaiming_uniform") if c.discrete else c


def _relax_stage(st: StageSpec) -> StageSpec:
    control = st.control
    if isinstance(control, ControlSet):
        control = _relax_set(control)
    elif isinstance(control, dict):
        control = {k: _relax_set(v) for k, v in control.items()}
    return dataclasses.replace(st, control=control, stages=relax_stages(st.stages))


def relax_stages(stages: Iterable[StageSpec]) -> tuple[StageSpec, ...]:
    """The stages with every discrete control set replaced by ``real`` (kaiming-uniform)."""
    return tuple(_relax_stage(s) for s in stages)


def control_sets(stages: Iterable[StageSpec]) -> Iterator[ControlSet]:
    """Every control set named in the stages, inner stages of residual blocks included."""
    for st in stages:
        c = st.control
        yield from (c.values() if isinstance(c, dict) else ([c] if c is not None else []))
        yield from control_sets(st.stages)


def set_kinds(stages: Iterable[StageSpec]) -> set[str]:
    """The kinds (``real``, ``binary``, ``ternary`` …) of the control sets named in the stages."""
    return {s.kind for s in control_sets(stages)}


def has_discrete(stages: Iterable[StageSpec]) -> bool:
    """Whether a control set named in the stages is finite."""
    return any(s.discrete for s in control_sets(stages))
