"""A compiled network as a plain ``torch.nn.Module`` in evaluation form: :meth:`System.to_module`.

The module maps x_0 to the network's output x_T, x_{t+1} = f_t(x_t, θ_t) for t = 0..T−1
(DESIGN.md §1), exactly as :meth:`ocdl.system.System.predict` does: BatchNorm with its running
statistics, dropout the identity. Each stage f_t becomes the torch layer of the same map, with
the controls θ_t as its parameters and the stage's buffers as its buffers:

    dense      W x + b                         → nn.Linear        (weight W, bias b)
    conv2d     W ⋆ x + b                       → nn.Conv2d        (weight W, bias b)
    batchnorm  γ (x − μ)/sqrt(σ² + ε) + β      → nn.BatchNorm1d for (C,) and (C, L) inputs,
                                                 nn.BatchNorm2d for (C, H, W), in eval mode
                                                 (weight γ, bias β, running_mean μ, running_var σ²)
    relu, tanh, sigmoid, hardtanh               → nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh
    maxpool, avgpool, flatten, dropout          → nn.MaxPool2d, nn.AvgPool2d, nn.Flatten,
                                                 nn.Dropout (the identity in eval mode)
    add, concat (merges)                        → :class:`Add`, :class:`Concat`
    residual   x + h·g(x)                      → its inner stages, and x + h·g in the forward
    any other op (``equation`` stages, …)       → :class:`StageLayer`, the op's own forward

Two forms:

- a chain (every stage reads the one before it, no residual block) is an ``nn.Sequential``
  whose children are named by the stages, so its ``state_dict()`` (``fc1.weight``,
  ``bn1.running_mean``, …) loads into an ``nn.Sequential`` written by hand with those names;
- any other network (residual blocks, stages reading earlier states, merges) is a
  ``torch.fx.GraphModule`` whose forward follows the System's DAG (``print(module.code)``
  shows it), with every stage, the inner stages of residual blocks included, a child under its
  own name: its ``state_dict()`` is flat too, ``<stage>.<param>`` being the control's name.

Controls are copied as they are, in the system's dtype and on its device: a discrete control's
entries are exactly its levels (±1.0, 0.0, …), a real one's the trained values. The module
computes in that dtype without autocast, also for a run trained under ``run.amp``.
Both forms run under ``torch.export.export``, ``torch.jit.trace`` and ``torch.jit.script``
(a :class:`StageLayer` only under the first two).
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from .errors import ModuleFormError
from .system import Stage, System


class Add(nn.Module):
    """The merge ``add``: x_a + x_b + … of the states it reads (a list, in the spec's order)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    """The merge ``concat``: the states it reads (a list) joined along sample axis ``axis``
    (tensor dimension ``axis + 1``, after the batch)."""

    def __init__(self, axis: int):
        super().__init__()
        self.dim = axis + 1

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class StageLayer(nn.Module):
    """A stage whose op has no torch layer (an ``equation`` stage, …): f_t(x, θ_t) by the op's
    own forward in evaluation mode, θ_t as parameters named by the op's controls (``a``, ``b``)
    and the stage's buffers as buffers. Runs eagerly, under ``torch.export`` and
    ``torch.jit.trace``; not under ``torch.jit.script`` (the op is Python code)."""

    def __init__(self, stage: Stage, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        self.op = stage.op
        self.params = dict(stage.params)
        for param, shape in shapes.items():  # θ_t's shapes; the values are copied in after
            self.register_parameter(param, nn.Parameter(torch.empty(shape)))
        for k, v in stage.buffers.items():
            self.register_buffer(k, torch.empty_like(v))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        theta = {k: p for k, p in self.named_parameters(recurse=False)}
        buffers = {k: b for k, b in self.named_buffers(recurse=False)}
        return self.op.forward(self.params, list(xs), theta, buffers, train=False,
                               update_stats=False, ctx={})

    def extra_repr(self) -> str:
        return f"op={self.op.name}"


def _pair(v: Any) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _batchnorm(st: Stage) -> nn.Module:
    p, shape = st.params, st.in_shapes[0]
    kind = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return kind(shape[0], eps=p["eps"], momentum=p["momentum"], affine=p["affine"])


def _pool(kind: type[nn.Module]) -> Callable[[Stage], nn.Module]:
    def make(st: Stage) -> nn.Module:
        p = st.params
        return kind(_pair(p["kernel"]), _pair(p["stride"] or p["kernel"]), _pair(p["padding"]))
    return make


#: op name → the torch layer of a stage of that op (parameters still to be filled in)
LAYERS: dict[str, Callable[[Stage], nn.Module]] = {
    "dense": lambda st: nn.Linear(st.in_shapes[0][0], st.params["units"],
                                  bias=st.params["bias"]),
    "conv2d": lambda st: nn.Conv2d(st.in_shapes[0][0], st.params["channels"],
                                   _pair(st.params["kernel"]), _pair(st.params["stride"]),
                                   _pair(st.params["padding"]), bias=st.params["bias"]),
    "batchnorm": _batchnorm,
    "relu": lambda st: nn.ReLU(),
    "tanh": lambda st: nn.Tanh(),
    "sigmoid": lambda st: nn.Sigmoid(),
    "hardtanh": lambda st: nn.Hardtanh(st.params["min"], st.params["max"]),
    "maxpool": _pool(nn.MaxPool2d),
    "avgpool": _pool(nn.AvgPool2d),
    "flatten": lambda st: nn.Flatten(),
    "dropout": lambda st: nn.Dropout(st.params["p"]),
    "add": lambda st: Add(),
    "concat": lambda st: Concat(st.params["axis"]),
}


def to_module(system: System) -> nn.Module:
    """The network of ``system`` as a ``torch.nn.Module`` in eval mode holding copies of its
    controls θ and buffers (the module above); raises :class:`ModuleFormError` for a system
    that is not a network of layers (an equation-defined problem)."""
    from .modelspec.model import NetworkSpec
    if not isinstance(system.spec, NetworkSpec):
        raise ModuleFormError(
            f"'{system.spec.name}' is an equation-defined system, which has no torch.nn.Module "
            "form (its stages are equations, not layers); run it as a System instead "
            "(system.forward(x0).output, ocdl.api.load_system(RUN))")
    layers = {st.name: _layer(system, st) for st in system.all_stages() if not st.children}
    return assemble(system, layers)


def assemble(system: System, layers: dict[str, nn.Module]) -> nn.Module:
    """The module of ``system``'s DAG (the two forms above, in eval mode) with ``layers[name]``
    as the layer of each stage that is not a residual block; :mod:`ocdl.deploy` passes its own
    layers for some stages (BatchNorm folded, weights kept packed)."""
    chain = all(not st.children and st.inputs == (t,) for t, st in enumerate(system.stages))
    if chain:
        module: nn.Module = nn.Sequential()
        for name, layer in layers.items():
            _add_child(module, name, layer)
    else:
        module = _graph_module(system, layers)
    return module.eval()


def _layer(system: System, st: Stage) -> nn.Module:
    """The stage's torch layer on the system's device, in its dtype, holding θ_t and the
    stage's buffers."""
    values = [(param, system.theta[full]) for param, full in st.controls.items()]
    values += list(st.buffers.items())
    make = LAYERS.get(st.op.name)
    try:
        layer = make(st) if make is not None else StageLayer(
            st, {param: tuple(system.theta[full].shape) for param, full in st.controls.items()})
    except KeyError:  # a control or buffer named like an attribute of nn.Module
        raise ModuleFormError(f"stage '{st.name}': a control or buffer of its {st.op.name} op "
                              "is named like an attribute of torch.nn.Module, so it cannot be a "
                              "module parameter; rename it in the spec") from None
    layer = layer.to(device=system.device, dtype=system.dtype)
    with torch.no_grad():
        for name, value in values:
            own = getattr(layer, name, None)
            if not isinstance(own, torch.Tensor) or tuple(own.shape) != tuple(value.shape):
                raise RuntimeError(f"ocdl.to_torch.LAYERS is out of step with the op "
                                   f"'{st.op.name}' (stage '{st.name}'): its layer has no tensor "
                                   f"'{name}' of shape {list(value.shape)}")
            own.copy_(value.detach())
    return layer


def _add_child(parent: nn.Module, name: str, child: nn.Module) -> None:
    try:
        parent.add_module(name, child)
    except KeyError:
        raise ModuleFormError(f"stage '{name}' cannot be a child of a torch.nn.Module: "
                              "torch uses that name itself; rename the stage in the spec"
                              ) from None


def _graph_module(system: System, layers: dict[str, nn.Module]) -> fx.GraphModule:
    """A GraphModule whose forward is the DAG of ``system``: x_0 the input, each top-level
    stage t applied to the states it reads, a residual block as x + h·g(x) with g its inner
    stages in order, and x_T returned."""
    root = nn.Module()
    for name, layer in layers.items():
        _add_child(root, name, layer)
    graph = fx.Graph()
    states = [graph.placeholder("x")]
    for st in system.stages:
        states.append(_emit(graph, st, [states[i] for i in st.inputs]))
    graph.output(states[-1])
    return fx.GraphModule(root, graph, class_name="Network")


def _emit(graph: fx.Graph, st: Stage, xs: list[fx.Node]) -> fx.Node:
    """The node of f(xs) for stage ``st`` (the inner stages' nodes too, for a residual block)."""
    if st.children:
        g = xs[0]
        for child in st.children:
            g = _emit(graph, child, [g])
        h = float(st.params["h"])
        if h != 1.0:
            g = graph.call_function(operator.mul, (h, g))
        return graph.call_function(operator.add, (xs[0], g))
    if st.op.name in ("add", "concat"):  # Add and Concat take the list of states
        return graph.call_module(st.name, (list(xs),))
    return graph.call_module(st.name, tuple(xs))
