"""The model spec: a declarative, versioned description of a control system (the *what*).

:class:`ModelSpec` is what the run layer asks of any spec (compile, feeders, default solver,
relaxation: the problem protocol); :class:`NetworkSpec` (stages, costs, data) and
:class:`EquationModelSpec` (a system of equations) implement it. A spec is built from YAML
(:mod:`ocdl.modelspec.yaml_io`) or the Python DSL (:mod:`ocdl.modelspec.dsl`); both go through
:func:`ocdl.modelspec.validate.spec_from_dict`, so they produce identical objects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..controls import ControlSet, compact_set
from ..errors import SpecError

if TYPE_CHECKING:
    from ..data.options import DataOptions
    from .equations import EquationSpec
    from .initial import InitialControls

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


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A validated model spec: what every kind has, and what the run layer asks of one (the
    *problem protocol*). Two kinds implement it: :class:`NetworkSpec` (stages, costs, a dataset)
    and :class:`EquationModelSpec` (a ``system:`` of equations with its own initial states);
    the run layer, the compiler's callers and the CLI use only these methods, never the kind.
    Equality is structural, so round trips can be checked with ``==``."""

    name: str
    description: str = ""
    version: int = SPEC_VERSION
    source: str | None = field(default=None, compare=False)  # file it was read from
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    #: whether the spec trains on a dataset named in its ``data:`` block (``--set data.*``)
    takes_data: ClassVar[bool] = False

    def where(self, path: str) -> tuple[str | None, int | None]:
        """File and line of a field path such as ``stages[3].units`` (for error messages)."""
        from .validate import locate
        return self.source, locate(path, self.lines)

    def located(self, err: SpecError) -> SpecError:
        """``err`` (raised on a field path of this spec) naming this spec's file and line."""
        if err.file or self.source is None:
            return err
        file, line = self.where(err.path)
        return type(err)(err.message, path=err.path, file=file, line=line)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ocdl": self.version, "name": self.name}
        if self.description:
            d["description"] = self.description
        return d

    def to_yaml(self) -> str:
        from .yaml_io import dump_yaml
        return dump_yaml(self.to_dict())

    # ------------------------------------------------------------------ the problem protocol
    def compile(self, device: Any = "cpu", dtype: Any = None, seed: int = 0):
        """The compiled :class:`ocdl.system.System` on ``device`` (``dtype`` default float32),
        its controls initialised from ``seed`` (the same values on every device)."""
        raise NotImplementedError

    def feeders(self, system: Any, device: Any):
        """The run's data feeders (``train``, ``valid``, ``test``: ``len`` and ``epoch(e,
        start_batch)`` of (x, y) batches on ``device``) for the compiled ``system``."""
        raise NotImplementedError

    def default_solver(self) -> str:
        """The solver preset a run uses when none is named."""
        raise NotImplementedError

    def has_discrete(self) -> bool:
        """Whether a control has a finite set (binary, ternary, levels)."""
        raise NotImplementedError

    def relaxed(self) -> "ModelSpec":
        """The same spec with every finite control set made real (a full-precision reference
        for the same architecture and costs)."""
        raise NotImplementedError

    def for_evaluation(self) -> "ModelSpec":
        """The spec whose feeders evaluate (and recompute statistics on) clean samples: a
        network's without data augmentation."""
        return self


@dataclass(frozen=True, kw_only=True)
class NetworkSpec(ModelSpec):
    """A network: the input shape, an ordered list of :class:`StageSpec` (each a map f_t with
    its controls θ_t and their admissible sets Θ_t, optionally reading earlier stages, so the
    model is a DAG), the costs Φ and L_t (:class:`CostSpec`) and the data block."""

    input: tuple[int, ...]
    stages: tuple[StageSpec, ...]
    cost: CostSpec = CostSpec()
    data: DataOptions | None = None
    #: the controls (and BatchNorm statistics) the compiled System starts from instead of its
    #: seeded initialisation (the key ``initial_controls``, :mod:`ocdl.modelspec.initial`)
    initial_controls: InitialControls | None = None

    takes_data: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["input"] = list(self.input)
        d["stages"] = [s.to_dict() for s in self.stages]
        d["cost"] = self.cost.to_dict()
        if self.data is not None:
            d["data"] = self.data.to_dict()
        if self.initial_controls is not None and self.initial_controls.path is not None:
            d["initial_controls"] = self.initial_controls.path
        return d

    def compile(self, device: Any = "cpu", dtype: Any = None, seed: int = 0):
        """See :func:`ocdl.compiler.compile_network`."""
        from ..compiler import compile_network
        return compile_network(self, device=device, dtype=dtype, seed=seed)

    def feeders(self, system: Any, device: Any):
        """Mini-batches of the dataset of the ``data:`` block (:func:`ocdl.data.make_feeders`)."""
        from .. import data
        return data.make_feeders(self.data, system.input_shape, device)

    def default_solver(self) -> str:
        """The E-MSA preset that fits the control sets: ``emsa-ternary`` with a ternary one,
        else ``emsa-binary`` with a binary one, else ``emsa``."""
        from .transform import set_kinds
        kinds = set_kinds(self.stages)
        return ("emsa-ternary" if "ternary" in kinds else "emsa-binary" if "binary" in kinds
                else "emsa")

    def has_discrete(self) -> bool:
        from .transform import has_discrete
        return has_discrete(self.stages)

    def relaxed(self) -> "NetworkSpec":
        from .transform import relax_stages
        return dataclasses.replace(self, stages=relax_stages(self.stages))

    def for_evaluation(self) -> "NetworkSpec":
        if self.data is None or not self.data.augment:
            return self
        return dataclasses.replace(self, data=dataclasses.replace(self.data, augment={}))


@dataclass(frozen=True, kw_only=True)
class EquationModelSpec(ModelSpec):
    """A classical control problem written as equations (the ``system:`` block,
    :class:`ocdl.modelspec.equations.EquationSpec`): its state vector (the input) is the named
    states, its samples are their initial values, and it has no dataset."""

    system: EquationSpec

    @property
    def input(self) -> tuple[int, ...]:
        return (self.system.n,)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "system": self.system.to_dict()}

    def compile(self, device: Any = "cpu", dtype: Any = None, seed: int = 0):
        """See :func:`ocdl.symbolic.system.compile_equations`."""
        import torch

        from ..symbolic.system import compile_equations
        try:
            return compile_equations(self, torch.device(device), dtype or torch.float32, seed)
        except SpecError as e:
            raise self.located(e) from None

    def feeders(self, system: Any, device: Any):
        """The initial states as one fixed batch (:mod:`ocdl.symbolic.feed`)."""
        from ..symbolic.feed import fixed_batch_feeders
        return fixed_batch_feeders(system)

    def default_solver(self) -> str:
        """``emsa-ocp``, or ``emsa-ocp-discrete`` when a control has a finite set."""
        return "emsa-ocp-discrete" if self.has_discrete() else "emsa-ocp"

    def has_discrete(self) -> bool:
        return any(cset.discrete for _, cset in self.system.controls)

    def relaxed(self) -> "EquationModelSpec":
        from ..controls import Real
        controls = tuple((n, Real(init_rule="zeros") if c.discrete else c)
                         for n, c in self.system.controls)
        return dataclasses.replace(self, system=dataclasses.replace(self.system,
                                                                    controls=controls))
