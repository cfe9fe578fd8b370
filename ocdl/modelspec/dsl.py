"""The Python DSL: build a model spec in code.

    m = ocdl.Model("mlp", input=(784,))
    m.dense(2048, bias=False, control=ocdl.Ternary()); m.batchnorm(eps=1e-4); m.relu()
    m.dense(10, bias=False, control=ocdl.Ternary()); m.batchnorm(eps=1e-4)
    m.terminal("squared_hinge"); m.l1(1e-7)
    spec = m.spec()          # the same ModelSpec the YAML loader builds
    system = m.compile()

Each call appends a stage and returns its name, so skip connections read naturally:
``a = m.relu(); m.dense(64); b = m.relu(); m.add(a, b)``. A residual block is a context:
``with m.residual(h=0.5): m.conv2d(16, padding=1); m.relu()``. Every method goes through the
same validation as YAML (:func:`ocdl.modelspec.validate.spec_from_dict`).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..controls import ControlSet
from ..errors import SpecError
from .model import SPEC_VERSION, ModelSpec


def _control(c: ControlSet | str | dict[str, Any] | None) -> Any:
    if c is None:
        return None
    if isinstance(c, ControlSet):
        return c.to_dict()
    if isinstance(c, dict):
        return {k: (v.to_dict() if isinstance(v, ControlSet) else v) for k, v in c.items()}
    return c


class Model:
    """Builder of a :class:`ModelSpec`; see the module docstring."""

    def __init__(self, name: str, input: Sequence[int] | int, description: str = ""):
        self.name = name
        self.input = [input] if isinstance(input, int) else list(input)
        self.description = description
        self._stages: list[dict[str, Any]] = []
        self._target = self._stages  # where new stages go (a residual block's inner list)
        self._terminal: str | None = None
        self._running: list[dict[str, Any]] = []
        self._data: dict[str, Any] | None = None
        self._counts: dict[str, int] = {}
        self._names: set[str] = set()

    # --------------------------------------------------------------- generic
    def stage(self, op: str, *, name: str | None = None, inputs: Sequence[str] | str | None = None,
              control: ControlSet | str | dict[str, Any] | None = None, **params: Any) -> str:
        """Append a stage of any registered op; returns its name."""
        if name is None:
            k = self._counts.get(op, 0) + 1
            while f"{op}{k}" in self._names:
                k += 1
            self._counts[op] = k
            name = f"{op}{k}"
        self._names.add(name)
        d: dict[str, Any] = {"name": name, "op": op}
        d.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()})
        if inputs is not None:
            d["inputs"] = [inputs] if isinstance(inputs, str) else list(inputs)
        if control is not None:
            d["control"] = _control(control)
        self._target.append(d)
        return name

    # --------------------------------------------------------------- ops
    def dense(self, units: int, *, bias: bool = True, control: Any = None, name: str | None = None,
              inputs: Any = None) -> str:
        return self.stage("dense", units=units, bias=bias, control=control, name=name,
                          inputs=inputs)

    def conv2d(self, channels: int, kernel: Any = 3, *, stride: Any = 1, padding: Any = 0,
               bias: bool = True, control: Any = None, name: str | None = None,
               inputs: Any = None) -> str:
        return self.stage("conv2d", channels=channels, kernel=kernel, stride=stride,
                          padding=padding, bias=bias, control=control, name=name, inputs=inputs)

    def batchnorm(self, *, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                  control: Any = None, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("batchnorm", eps=eps, momentum=momentum, affine=affine,
                          control=control, name=name, inputs=inputs)

    def relu(self, *, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("relu", name=name, inputs=inputs)

    def tanh(self, *, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("tanh", name=name, inputs=inputs)

    def sigmoid(self, *, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("sigmoid", name=name, inputs=inputs)

    def hardtanh(self, min: float = -1.0, max: float = 1.0, *, name: str | None = None,
                 inputs: Any = None) -> str:
        return self.stage("hardtanh", min=min, max=max, name=name, inputs=inputs)

    def maxpool(self, kernel: Any = 2, *, stride: Any = None, padding: Any = 0,
                name: str | None = None, inputs: Any = None) -> str:
        kw = {"stride": stride} if stride is not None else {}
        return self.stage("maxpool", kernel=kernel, padding=padding, name=name, inputs=inputs,
                          **kw)

    def avgpool(self, kernel: Any = 2, *, stride: Any = None, padding: Any = 0,
                name: str | None = None, inputs: Any = None) -> str:
        kw = {"stride": stride} if stride is not None else {}
        return self.stage("avgpool", kernel=kernel, padding=padding, name=name, inputs=inputs,
                          **kw)

    def flatten(self, *, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("flatten", name=name, inputs=inputs)

    def dropout(self, p: float = 0.5, *, name: str | None = None, inputs: Any = None) -> str:
        return self.stage("dropout", p=p, name=name, inputs=inputs)

    def add(self, *inputs: str, name: str | None = None) -> str:
        return self.stage("add", inputs=list(inputs), name=name)

    def concat(self, *inputs: str, axis: int = 0, name: str | None = None) -> str:
        return self.stage("concat", inputs=list(inputs), axis=axis, name=name)

    def equation(self, variables: Sequence[str], dynamics: dict[str, Any], controls: dict[
                 str, ControlSet | str | dict[str, Any]] | None = None,
                 constants: dict[str, float] | None = None, outputs: Sequence[str] | None = None,
                 *, control: Any = None, name: str | None = None, inputs: Any = None) -> str:
        """A stage given by expressions (see :mod:`ocdl.ops.equation`): the input vector's
        entries are ``variables``, ``dynamics`` gives one expression per output entry (the
        variables, or ``outputs``), ``controls`` the stage's scalar controls and their sets."""
        params: dict[str, Any] = {"variables": list(variables), "dynamics": dict(dynamics)}
        if controls is not None:
            params["controls"] = {k: (v.to_dict() if isinstance(v, ControlSet) else v)
                                  for k, v in controls.items()}
        if constants is not None:
            params["constants"] = dict(constants)
        if outputs is not None:
            params["outputs"] = list(outputs)
        return self.stage("equation", control=control, name=name, inputs=inputs, **params)

    @contextmanager
    def residual(self, h: float = 1.0, *, name: str | None = None,
                 inputs: Any = None) -> Iterator["Model"]:
        """``with m.residual(h): …`` — stages added inside form g of x + h·g(x)."""
        if self._target is not self._stages:
            raise SpecError("residual blocks cannot be nested in the DSL; close the outer block "
                            "first")
        self.stage("residual", h=h, name=name, inputs=inputs)
        block = self._stages[-1]
        block["stages"] = []
        self._target = block["stages"]
        try:
            yield self
        finally:
            self._target = self._stages

    # --------------------------------------------------------------- costs and data
    def terminal(self, cost: str) -> "Model":
        """Terminal cost Φ: ``cross_entropy``, ``squared_hinge`` or ``mse``."""
        self._terminal = cost
        return self

    def l1(self, weight: float, apply_to: Sequence[str] | None = None, *,
           on: Sequence[str] | None = None) -> "Model":
        """Running cost λ‖θ‖₁ on the controls of the stages (or ``stage.control``) named in
        ``apply_to`` (default: all weights); ``on`` is an older name of ``apply_to``."""
        return self._run("l1", weight, apply_to if apply_to is not None else on)

    def l2(self, weight: float, apply_to: Sequence[str] | None = None, *,
           on: Sequence[str] | None = None) -> "Model":
        """Running cost λ‖θ‖² on the controls of the stages named in ``apply_to`` (default: all
        weights); ``on`` is an older name of ``apply_to``."""
        return self._run("l2", weight, apply_to if apply_to is not None else on)

    def state_l2(self, weight: float, apply_to: Sequence[str] | None = None, *,
                 on: Sequence[str] | None = None) -> "Model":
        """Running cost (1/S) Σ_s λ‖x_{s,t}‖² on the states of the stages named in ``apply_to``;
        ``on`` is an older name of ``apply_to``."""
        return self._run("state_l2", weight, apply_to if apply_to is not None else on)

    def _run(self, typ: str, weight: float, apply_to: Sequence[str] | None) -> "Model":
        d: dict[str, Any] = {"type": typ, "weight": weight}
        if apply_to is not None:
            d["apply_to"] = [apply_to] if isinstance(apply_to, str) else list(apply_to)
        self._running.append(d)
        return self

    def data(self, name: str, **options: Any) -> "Model":
        """The ``data:`` block (see :class:`ocdl.data.options.DataOptions`)."""
        self._data = {"name": name, **options}
        return self

    # --------------------------------------------------------------- output
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ocdl": SPEC_VERSION, "name": self.name}
        if self.description:
            d["description"] = self.description
        d["input"] = list(self.input)
        d["stages"] = self._stages
        cost: dict[str, Any] = {"terminal": self._terminal or "cross_entropy"}
        if self._running:
            cost["running"] = self._running
        d["cost"] = cost
        if self._data is not None:
            d["data"] = self._data
        return d

    def spec(self) -> ModelSpec:
        """Validate and return the :class:`ModelSpec`."""
        from .validate import spec_from_dict
        return spec_from_dict(self.to_dict())

    def compile(self, device: Any = "cpu", dtype: Any = None, seed: int = 0):
        """Validate and compile to a :class:`ocdl.system.System`."""
        return self.spec().compile(device=device, dtype=dtype, seed=seed)
