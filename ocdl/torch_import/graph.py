"""Trace a ``torch.nn.Module`` with torch.fx and turn its graph into ocdl stages.

Why torch.fx and not torch.export: fx's symbolic trace keeps each ``nn.Module`` layer as one
``call_module`` node with its qualified name and its attributes (stride, eps, momentum, …) and
keeps calls such as ``F.relu`` and ``torch.cat`` as written, so one node maps onto one ocdl
stage and the spec can be written in the user's names. The trace does not depend on train or
eval mode: a BatchNorm layer stays a BatchNorm stage that uses batch statistics in training and
running ones in evaluation, as ocdl's does. torch.export lowers to ATen operators with the mode
baked in (``_native_batch_norm_legit_no_training``), parameters lifted to inputs and layer
boundaries only in metadata, which would have to be pattern-matched back into layers.

The graph is a DAG x_0 → … → x_T: each call node becomes a stage reading the stages of its
tensor arguments (``inputs:`` when that is not the previous stage), so residual adds and
concatenations become ``add`` and ``concat`` merges. Shapes come from running the traced graph
once on a zero batch (:class:`_Shapes`, an fx interpreter) in evaluation mode, without
gradients, so the module's running statistics are not touched; each layer's train/eval mode is
restored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import fx

from ..errors import TorchImportError
from ..ops import get_op
from .layers import SHAPE, Alias, Layer, Meta
from .nodes import map_node

#: batch size of the shape-propagation run: odd and unlike feature sizes, so that a reshape
#: across the batch is told from a flatten of each sample
PROBE_BATCH = 3


@dataclass
class Built:
    """A stage for the spec, with what the import needs to know about it."""

    name: str
    layer: Layer
    inputs: list[str]  # stage names or "input"
    module: str  # the torch path (qualified name or fx node) for messages and control sets
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)


def trace(module: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """The fx graph of ``module``, dead code removed, each tensor node's full shape in
    ``node.meta[SHAPE]`` from a run on a zero batch of ``PROBE_BATCH`` samples of
    ``input_shape``."""
    if not isinstance(module, nn.Module):
        raise TorchImportError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    try:
        gm = fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 - fx raises many kinds on untraceable code
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise TorchImportError(
            f"torch.fx cannot trace {type(module).__name__} ({type(e).__name__}: {first}); "
            "ocdl imports modules whose forward is a fixed graph of layers: move Python control "
            "flow on tensor values (if/for over data) out of forward") from None
    gm.graph.eliminate_dead_code()
    gm.recompile()
    p = next(module.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.get_default_dtype()
    device = p.device if p is not None else torch.device("cpu")
    x = torch.zeros((PROBE_BATCH, *input_shape), dtype=dtype, device=device)
    modes = {m: m.training for m in gm.modules()}
    try:
        gm.eval()
        with torch.no_grad():
            _Shapes(gm).run(x)
    except _Failed as f:
        e = f.error
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise TorchImportError(f"{type(module).__name__} fails at {_where(f.node, gm)} on a "
                               f"batch of input shape {list(input_shape)} ({type(e).__name__}: "
                               f"{first}); check input_shape (one sample, without the batch)"
                               ) from None
    finally:
        for m, mode in modes.items():
            m.training = mode
    return gm


class _Failed(Exception):
    def __init__(self, node: fx.Node, error: Exception):
        self.node, self.error = node, error


class _Shapes(fx.Interpreter):
    """Runs the graph once and records each tensor node's shape in ``node.meta[SHAPE]``."""

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as e:  # noqa: BLE001 - the module's own error on this input
            raise _Failed(n, e) from None
        if isinstance(result, torch.Tensor):
            n.meta[SHAPE] = tuple(result.shape)
        return result


_BAD = re.compile(r"[^A-Za-z0-9_\-]")


def _stage_name(raw: str, op: str, taken: set[str]) -> str:
    """An ocdl stage name for the torch path ``raw``: dots become '_', a name starting with a
    digit (an ``nn.Sequential`` index) gets the op in front, repeats get a suffix."""
    name = _BAD.sub("_", raw.replace(".", "_"))
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"{op}{name}" if name[:1].isdigit() else f"{op}_{name}"
    if name == "input":
        name = "input_"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _where(node: fx.Node, root: nn.Module) -> str:
    """``<qualified name> (<Type>)`` for a layer; ``<fx node> (<target>) in <module path>`` for
    a function or method."""
    if node.op == "call_module":
        return f"{node.target} ({type(root.get_submodule(node.target)).__name__})"
    stack = node.meta.get("nn_module_stack") or {}
    inside = list(stack.values())[-1][0] if stack else ""
    inside = f" in {inside}" if inside else f" in {type(root).__name__}.forward"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__",
                                                                        node.target)
    return f"{node.name} ({target}){inside}"


def _raw_name(node: fx.Node) -> str:
    """A layer's qualified name; for a function or method, the enclosing module's path and the
    function (``layers.0`` and ``relu_1`` → ``layers.0.relu``)."""
    if node.op == "call_module":
        return node.target
    base = re.sub(r"_\d+$", "", node.name)
    stack = node.meta.get("nn_module_stack") or {}
    return f"{list(stack)[-1]}.{base}" if stack else base


def to_stages(gm: fx.GraphModule, root: nn.Module) -> list[Built]:
    """The stages of the traced graph, in its (topological) order; the last is the output."""
    ref: dict[fx.Node, str | None] = {}  # node → stage name, "input", or None (a Meta value)
    taken: set[str] = set()
    built: list[Built] = []
    used_layers: dict[str, str] = {}
    output: fx.Node | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if "input" in ref.values():
                raise TorchImportError(f"{type(root).__name__}.forward takes more than one "
                                       f"tensor ({node.name}); ocdl networks read one input")
            ref[node] = "input"
            continue
        if node.op == "output":
            output = node
            continue
        where = _where(node, root)
        mapped = map_node(node, gm, where)
        if isinstance(mapped, Meta):
            ref[node] = None
            continue
        if isinstance(mapped, Alias):
            ref[node] = ref[mapped.of]
            continue
        if node.op == "call_module" and mapped.tensors:
            if node.target in used_layers:
                raise TorchImportError(f"{where}: the layer is called twice (shared weights); "
                                       "ocdl gives each stage its own controls: use two layers")
            used_layers[node.target] = node.target
        inputs = []
        for n in mapped.inputs:
            r = ref.get(n)
            if r is None:
                raise TorchImportError(f"{where}: reads {n.name}, which is not a tensor of the "
                                       "network")
            inputs.append(r)
        name = _stage_name(_raw_name(node), mapped.op, taken)
        in_shapes = [n.meta[SHAPE][1:] for n in mapped.inputs]
        built.append(Built(name, mapped, inputs, node.target if node.op == "call_module"
                           else where, in_shapes))
        ref[node] = name
    assert output is not None
    out = output.args[0]
    if not isinstance(out, fx.Node) or SHAPE not in out.meta:
        raise TorchImportError(f"{type(root).__name__}.forward returns "
                               f"{type(out).__name__}, not one tensor; ocdl networks have one "
                               "output x_T")
    if not built or ref.get(out) != built[-1].name:
        raise TorchImportError(f"{type(root).__name__}.forward returns "
                               f"{'its input' if ref.get(out) == 'input' else out.name}, not the "
                               "last layer's output; ocdl's output x_T is the last stage")
    return built


def primary_controls(b: Built) -> dict[str, bool]:
    """Control name → whether a single ``control:`` set applies to it (the op's declaration)."""
    op = get_op(b.layer.op)
    params = {k: v for k, v in b.layer.params.items()}
    full = {k: params.get(k, p.default) for k, p in op.params.items()}
    return {d.name: d.primary for d in op.controls(full, b.in_shapes)}


def stage_dict(b: Built, previous: str, control: Any) -> dict[str, Any]:
    """The spec form of a built stage (``inputs`` only when it is not the previous stage)."""
    d: dict[str, Any] = {"name": b.name, "op": b.layer.op}
    params = dict(b.layer.params)
    if "stride" in params and b.layer.op in ("maxpool", "avgpool") and \
            params["stride"] == params["kernel"]:
        del params["stride"]  # the pools' default stride is the window
    for k, v in params.items():  # a pair of equal sizes as one number, as specs are written
        d[k] = (v[0] if v[0] == v[1] else list(v)) if isinstance(v, tuple) else v
    if b.inputs != [previous]:
        d["inputs"] = list(b.inputs)
    if control is not None:
        d["control"] = control
    return d
