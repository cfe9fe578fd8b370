"""``ocdl.from_torch``: a ``torch.nn.Module`` → a model spec and its initial controls.

    imported = ocdl.from_torch(net, input_shape=(3, 32, 32),
                               controls={"Conv2d": ocdl.Ternary(), "fc_out": ocdl.Binary()})
    imported.spec                      # the NetworkSpec (stages named after the layers)
    system = imported.system()         # compiled, θ⁰ = Q(W) loaded (DESIGN.md §1's θ_t)
    imported.save("net.yaml")          # net.yaml + net.controls.pt beside it

The spec is validated like a YAML file (:func:`ocdl.modelspec.validate.spec_from_dict`) and
compiled once, so what ``from_torch`` returns runs. The initial controls (the module's weights,
through each set's quantizer, :mod:`ocdl.torch_import.choices`, and BatchNorm's running
statistics) travel with the spec as its ``initial_controls`` (:mod:`ocdl.modelspec.initial`):
in memory until :meth:`ImportedModel.save` writes them beside the YAML file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..controls import ControlSet, Real, compact_set
from ..errors import SpecError, TorchImportError
from ..modelspec.initial import InitialControls, write_tensors
from ..modelspec.model import NetworkSpec
from ..modelspec.validate import spec_from_dict
from ..system import System
from .choices import Chooser, set_of, start_value
from .graph import Built, primary_controls, stage_dict, to_stages, trace

CONTROLS_SUFFIX = ".controls.pt"


@dataclasses.dataclass
class ImportedModel:
    """What :func:`from_torch` returns: ``spec`` (with the initial controls in memory),
    ``initial`` (name → tensor: controls θ⁰ and BatchNorm statistics), ``parameters`` (ocdl
    control name → the torch parameter it came from, e.g. ``fc1.weight`` →
    ``features.0.weight``) and ``stages`` (torch path → stage name)."""

    spec: NetworkSpec
    initial: dict[str, torch.Tensor]
    parameters: dict[str, str]
    stages: dict[str, str]

    def system(self, device: Any = "cpu", dtype: torch.dtype | None = None,
               seed: int = 0) -> System:
        """The compiled :class:`System` on ``device`` (``dtype`` default float32) with the
        initial controls and statistics loaded."""
        return self.spec.compile(device=device, dtype=dtype, seed=seed)

    def to_yaml(self) -> str:
        """The spec as YAML text, one line per stage (``initial_controls`` once saved)."""
        return spec_yaml(self.spec)

    def save(self, path: str | Path) -> Path:
        """Write the spec to ``path`` (YAML) and the initial controls beside it
        (``<stem>.controls.pt``, named by the spec's ``initial_controls``); returns ``path``.
        ``ocdl solve path`` then starts from them; ``spec`` now names the file."""
        path = Path(path)
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise TorchImportError(f"save: {path} is not a .yaml file; name the spec file "
                                   "like net.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        controls = path.with_name(path.stem + CONTROLS_SUFFIX)
        write_tensors(self.initial, controls)
        init = InitialControls(path=controls.name, file=controls.resolve())
        spec = dataclasses.replace(self.spec, initial_controls=init, source=str(path))
        header = (f"# imported from torch by ocdl.from_torch; the module's weights are the "
                  f"initial controls in {controls.name}\n")
        from ..run.checkpoint import write_text_atomic
        write_text_atomic(path, header + spec_yaml(spec))
        self.spec = spec
        return path


def from_torch(module: nn.Module, *, input_shape: Any,
               controls: Mapping[str, Any] | None = None, cost: str = "cross_entropy",
               data: Any = None, name: str | None = None,
               running: list[dict[str, Any]] | None = None) -> ImportedModel:
    """Turn ``module`` into an ocdl model spec and its initial controls (see the module doc).

    input_shape: one sample's shape, without the batch (``(1, 28, 28)``, ``(784,)``).
    controls: sets by layer name or type (names win; default real), see
    :mod:`ocdl.torch_import.choices`. cost: the terminal cost Φ (``cross_entropy``,
    ``squared_hinge``, ``mse``); running: running costs as in a spec
    (``[{"type": "l1", "weight": 1e-7}]``). data: the spec's ``data:`` block (a dataset name
    or mapping), optional. name: the spec's name (default: the module's class, lower case).
    Anything that cannot be mapped raises :class:`TorchImportError` naming the module path."""
    shape = _shape(input_shape)
    gm = trace(module, shape)
    built = to_stages(gm, module)
    chooser = Chooser(controls)
    stages: list[dict[str, Any]] = []
    initial: dict[str, torch.Tensor] = {}
    parameters: dict[str, str] = {}
    previous = "input"
    for b in built:
        control = None
        if b.layer.tensors:
            choice = chooser.choose(b.module, b.layer.kind or b.layer.op)
            primary = primary_controls(b)
            for c, w in b.layer.tensors.items():
                cset = set_of(choice, c, primary.get(c, False))
                initial[f"{b.name}.{c}"] = start_value(cset, w)
                parameters[f"{b.name}.{c}"] = f"{b.module}.{c}"
            control = _control_form(choice)
        for k, v in b.layer.buffers.items():
            initial[f"{b.name}.{k}"] = v.detach().clone()
        stages.append(stage_dict(b, previous, control))
        previous = b.name
    chooser.check_all_used()
    d: dict[str, Any] = {"ocdl": 1, "name": name or type(module).__name__.lower(),
                         "input": list(shape), "stages": stages,
                         "cost": {"terminal": cost, **({"running": running} if running else {})}}
    if data is not None:
        d["data"] = data
    try:
        spec = spec_from_dict(d)
    except SpecError as e:
        raise TorchImportError(f"the imported spec is refused: {_with_module(e, built)}") from None
    spec = dataclasses.replace(spec, initial_controls=InitialControls(tensors=initial))
    try:  # shapes, sets and the initial controls, checked as ocdl solve will
        spec.compile(device="cpu", dtype=next((t.dtype for t in initial.values()
                                               if t.is_floating_point()), None))
    except SpecError as e:
        raise TorchImportError(f"the imported spec does not compile: {_with_module(e, built)}"
                               ) from None
    return ImportedModel(spec, initial, parameters, {b.module: b.name for b in built})


def spec_yaml(spec: NetworkSpec) -> str:
    """``spec`` as YAML with each stage on one line (``- {name: fc1, op: dense, units: 10}``),
    as the shipped models are written; it reads back to an equal spec."""
    import yaml

    from ..modelspec.yaml_io import dump_yaml
    d = spec.to_dict()
    keys = list(d)
    cut = keys.index("stages")
    head = dump_yaml({k: d[k] for k in keys[:cut]})
    tail = dump_yaml({k: d[k] for k in keys[cut + 1:]})
    flow = [yaml.safe_dump(_compact(st), default_flow_style=True, sort_keys=False,
                           width=10**6).strip() for st in d["stages"]]
    lines = [f"  - {st}" for st in flow]
    return head + "stages:\n" + "\n".join(lines) + "\n" + tail


def _compact(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's spec form with each pair of equal sizes written as one number (``padding: 1``
    for ``[1, 1]``), as specs are written by hand."""
    from ..ops import get_op
    params = get_op(stage["op"]).params
    return {k: v[0] if (k in params and params[k].kind in ("pair", "nonnegpair")
                        and isinstance(v, list) and v[0] == v[1]) else v
            for k, v in stage.items()}


def _shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s < 1 for s in shape) or any(
            isinstance(s, bool) or (isinstance(s, float) and not s.is_integer())
            for s in input_shape):
        raise TorchImportError(f"input_shape must be one sample's shape as positive integers, "
                               f"e.g. (3, 32, 32), got {input_shape!r}")
    return shape


def _control_form(choice: Any) -> Any:
    """The spec's ``control:`` value of a layer's choice (None: the op's default, real)."""
    if isinstance(choice, ControlSet):
        return None if choice == Real() else compact_set(choice)
    if isinstance(choice, dict):
        return {k: compact_set(v) for k, v in choice.items()}
    return None


def _with_module(e: SpecError, built: list[Built]) -> str:
    """The message of ``e`` with the torch path of the stage its field path names."""
    text = str(e)
    if e.path.startswith("stages["):
        i = int(e.path[7:e.path.index("]")])
        if i < len(built):
            text += f" (the stage '{built[i].name}' from {built[i].module})"
    return text
