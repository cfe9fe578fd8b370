"""The model spec: a declarative, versioned description of a control system (the *what*).

A :class:`ModelSpec` holds the input shape, an ordered list of :class:`StageSpec` (each a map
f_t with its controls θ_t and their admissible sets Θ_t, optionally reading earlier stages, so
the model is a DAG), the costs Φ and L_t (:class:`CostSpec`) and the data block. It is built
from YAML (:mod:`ocdl.spec.yaml_io`) or the Python DSL (:mod:`ocdl.spec.dsl`); both go through
:func:`ocdl.spec.validate.spec_from_dict`, so they produce identical objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..controls import ControlSet
from ..data.options import DataOptions

SPEC_VERSION = 1
TERMINAL_COSTS = ("cross_entropy", "squared_hinge", "mse")
RUNNING_COSTS = ("l1", "l2", "state_l2")


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``name``, ``op``, validated op ``params`` (defaults filled in), ``inputs``
    (names of earlier stages or ``input``; ``None`` = the previous stage), ``control`` (one set
    for the op's primary controls, or a mapping control name → set) and, for ``residual``, the
    inner ``stages``."""

    name: str
    op: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None
    control: ControlSet | dict[str, ControlSet] | None = None
    stages: tuple["StageSpec", ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from ..ops import get_op
        from ..ops.base import compact_set
        op = get_op(self.op)
        d: dict[str, Any] = {"name": self.name, "op": self.op}
        for k, v in self.params.items():
            param = op.params[k]
            if v != param.default:
                d[k] = param.to_data(v)
        if self.inputs is not None:
            d["inputs"] = list(self.inputs)
        if isinstance(self.control, ControlSet):
            d["control"] = compact_set(self.control)
        elif self.control:
            d["control"] = {k: compact_set(v) for k, v in self.control.items()}
        if self.stages:
            d["stages"] = [s.to_dict() for s in self.stages]
        return d



@dataclass(frozen=True)
class RunningCost:
    """A running cost term. ``l1``/``l2``: λ‖θ‖₁ or λ‖θ‖² on the controls named in ``apply_to``
    (stage names or ``stage.control``; ``None`` = every primary control). ``state_l2``:
    (1/S) Σ_s λ‖x_{s,t+1}‖² on the outputs of the stages named in ``apply_to``.

    The spec key is ``apply_to``; the older ``on`` (which YAML 1.1 tools read as ``true``) is
    still read, with a :class:`ocdl.errors.SpecDeprecationWarning`."""

    type: str
    weight: float
    apply_to: tuple[str, ...] | None = None

    @property
    def on(self) -> tuple[str, ...] | None:
        """Deprecated alias of :attr:`apply_to`."""
        return self.apply_to

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "weight": self.weight}
        if self.apply_to is not None:
            d["apply_to"] = list(self.apply_to)
        return d


@dataclass(frozen=True)
class CostSpec:
    """Terminal cost Φ (``cross_entropy``, ``squared_hinge`` or ``mse``) and running costs."""

    terminal: str = "cross_entropy"
    running: tuple[RunningCost, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"terminal": self.terminal}
        if self.running:
            d["running"] = [r.to_dict() for r in self.running]
        return d


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec. Equality is structural, so round trips can be checked with ``==``."""

    name: str
    input: tuple[int, ...]
    stages: tuple[StageSpec, ...]
    cost: CostSpec = CostSpec()
    data: DataOptions | None = None
    description: str = ""
    version: int = SPEC_VERSION
    source: str | None = field(default=None, compare=False)  # file it was read from
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    system: Any = None  # an ocdl.spec.equations.EquationSpec for equation-defined systems

    def where(self, path: str) -> tuple[str | None, int | None]:
        """File and line of a field path such as ``stages[3].units`` (for error messages)."""
        from .validate import locate
        return self.source, locate(path, self.lines)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ocdl": self.version, "name": self.name}
        if self.description:
            d["description"] = self.description
        if self.system is not None:
            d["system"] = self.system.to_dict()
            return d
        d["input"] = list(self.input)
        d["stages"] = [s.to_dict() for s in self.stages]
        d["cost"] = self.cost.to_dict()
        if self.data is not None:
            d["data"] = self.data.to_dict()
        return d

    def to_yaml(self) -> str:
        from .yaml_io import dump_yaml
        return dump_yaml(self.to_dict())

    def compile(self, device: Any = "cpu", dtype: Any = None, seed: int = 0):
        """Compile to a :class:`ocdl.system.System` (see :func:`ocdl.compiler.compile_spec`)."""
        from ..compiler import compile_spec
        return compile_spec(self, device=device, dtype=dtype, seed=seed)
