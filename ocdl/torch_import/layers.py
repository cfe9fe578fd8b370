"""One torch.fx node → one ocdl stage: the mapped forms and the layers (``call_module``).

A node is a layer call (``call_module``: ``nn.Linear`` …), a function (``F.relu``,
``torch.cat``, ``operator.add``) or a tensor method (``x.view``). Each maps to

* :class:`Layer`: an ocdl stage ``op`` with its spec parameters, the nodes it reads, and (for
  dense, conv2d, batchnorm) the module's tensors: controls θ (``weight``, ``bias``) and
  BatchNorm's running statistics;
* :class:`Alias`: no stage, the output is another node's (``nn.Identity``, ``x.contiguous()``, a
  flatten of what is flat already);
* :class:`Meta`: not a tensor (``x.size(0)``, ``x.shape[0]``), only read by reshapes.

What ocdl has no op or argument for is refused with :class:`TorchImportError` naming the module
path, the layer or function and how to fix it; every argument that changes the map (bias,
stride, padding, eps, momentum, affine, …) is carried over exactly or refused.

    Linear(W, b)         → dense      x ↦ W x + b
    Conv2d(W, b)         → conv2d     x ↦ W ⋆ x + b  (zero padding, dilation 1, groups 1)
    BatchNorm1d/2d(γ, β) → batchnorm  x ↦ γ (x − μ)/sqrt(σ² + ε) + β
    ReLU, Tanh, Sigmoid, Hardtanh, ReLU6 → relu, tanh, sigmoid, hardtanh (ReLU6 = [0, 6])
    MaxPool2d, AvgPool2d, Adaptive*Pool2d (sizes that divide) → maxpool, avgpool
    Flatten, x.view(x.size(0), -1), torch.flatten(x, 1) → flatten
    Dropout(p) → dropout;  a + b → add;  torch.cat(…, dim ≥ 1) → concat
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import fx

from ..errors import TorchImportError

_REQUIRED = object()
SHAPE = "ocdl_shape"  # node.meta key: the full shape (batch first) of a tensor node


@dataclass
class Layer:
    """A stage to emit: ``op`` and spec ``params``, the tensor nodes it reads (``inputs``), the
    module's ``tensors`` (controls by ocdl name) with their torch ``sources`` (parameter
    names), its running statistics ``buffers``, and the module type (``kind``) for control
    sets chosen by type."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[fx.Node] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    kind: str | None = None


@dataclass
class Alias:
    """No stage: the node's value is ``of``'s."""

    of: fx.Node


@dataclass
class Meta:
    """A value that is not a tensor (a size), read only by reshapes."""


Mapped = Layer | Alias | Meta


class At:
    """A node under conversion: where it is (for messages), its arguments and shapes."""

    def __init__(self, node: fx.Node, root: nn.Module, where: str):
        self.node = node
        self.root = root
        self.where = where
        self.module = root.get_submodule(node.target) if node.op == "call_module" else None

    def refuse(self, what: str, fix: str) -> TorchImportError:
        return TorchImportError(f"{self.where}: {what}; {fix}")

    def shape(self, n: Any) -> tuple[int, ...]:
        """The full shape (batch first) of the tensor node ``n``."""
        shape = n.meta.get(SHAPE) if isinstance(n, fx.Node) else None
        if shape is None:
            raise self.refuse(f"reads {n!r}, which is not a single tensor",
                              "ocdl stages read tensors only")
        return shape

    @property
    def out(self) -> tuple[int, ...]:
        return self.shape(self.node)

    @property
    def first(self) -> Any:
        """The first argument (the input of a layer or function)."""
        return self.node.args[0] if self.node.args else self.node.kwargs.get("input")

    def bind(self, spec: str) -> dict[str, Any]:
        """The node's arguments by name for the signature ``spec`` ("input, p=0.5, …")."""
        names, defaults = [], {}
        for part in spec.split(","):
            name, _, default = part.strip().partition("=")
            names.append(name)
            defaults[name] = ast.literal_eval(default) if default else _REQUIRED
        args = dict(zip(names, self.node.args))
        if len(self.node.args) > len(names):
            raise self.refuse(f"{len(self.node.args)} positional arguments",
                              f"ocdl knows the form ({spec})")
        for k, v in self.node.kwargs.items():
            if k not in defaults:
                raise self.refuse(f"the argument {k}={v!r} has no ocdl counterpart",
                                  f"ocdl reads ({spec})")
            args[k] = v
        for k, d in defaults.items():
            if k not in args:
                if d is _REQUIRED:
                    raise self.refuse(f"the argument '{k}' is missing", f"give ({spec})")
                args[k] = d
        return args

    def tensor(self, v: Any, what: str) -> fx.Node:
        if not isinstance(v, fx.Node) or SHAPE not in v.meta:
            raise self.refuse(f"{what} is {v!r}, not a tensor computed by the network",
                              "ocdl stages combine the network's own tensors only (no "
                              "constants or scalars)")
        return v


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _sample(at: At, n: fx.Node, ranks: Sequence[int], layer: str) -> tuple[int, ...]:
    s = at.shape(n)[1:]
    if len(s) not in ranks:
        want = " or ".join(f"{r}-dimensional" for r in ranks)
        raise at.refuse(f"{layer} reads samples of shape {list(s)}; ocdl's op takes "
                        f"{want} samples", "flatten or reshape before it (or check --input-shape)")
    return s


# ---------------------------------------------------------------------------- layers (modules)
def _linear(at: At, m: nn.Linear) -> Layer:
    _sample(at, at.first, (1,), "Linear")
    tensors = {"weight": m.weight}
    if m.bias is not None:
        tensors["bias"] = m.bias
    return Layer("dense", {"units": m.out_features, "bias": m.bias is not None},
                 tensors=tensors)


def _conv2d(at: At, m: nn.Conv2d) -> Layer:
    _sample(at, at.first, (3,), "Conv2d")
    if m.groups != 1:
        raise at.refuse(f"Conv2d with groups={m.groups}", "ocdl's conv2d has no groups: "
                        "use groups=1")
    if tuple(m.dilation) != (1, 1):
        raise at.refuse(f"Conv2d with dilation={tuple(m.dilation)}", "ocdl's conv2d has no "
                        "dilation: use dilation=1")
    if m.padding_mode != "zeros":
        raise at.refuse(f"Conv2d with padding_mode='{m.padding_mode}'", "ocdl pads with "
                        "zeros only: use padding_mode='zeros'")
    k = _pair(m.kernel_size)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            pad = (0, 0)
        elif all(x % 2 == 1 for x in k):  # 'same' (stride 1): (k − 1)/2 on each side
            pad = ((k[0] - 1) // 2, (k[1] - 1) // 2)
        else:
            raise at.refuse(f"Conv2d(padding='same') with the even kernel {list(k)} pads "
                            "unevenly", "give an odd kernel or explicit padding")
    else:
        pad = _pair(m.padding)
    tensors = {"weight": m.weight}
    if m.bias is not None:
        tensors["bias"] = m.bias
    return Layer("conv2d", {"channels": m.out_channels, "kernel": k, "stride": _pair(m.stride),
                            "padding": pad, "bias": m.bias is not None}, tensors=tensors)


def _batchnorm(at: At, m: nn.modules.batchnorm._BatchNorm) -> Layer:
    ranks = (3,) if isinstance(m, nn.BatchNorm2d) else (1, 2)
    _sample(at, at.first, ranks, type(m).__name__)
    if not m.track_running_stats or m.running_mean is None:
        raise at.refuse(f"{type(m).__name__}(track_running_stats=False) normalises with the "
                        "batch's statistics in evaluation too", "ocdl's batchnorm keeps running "
                        "statistics: use track_running_stats=True")
    if m.momentum is None:
        raise at.refuse(f"{type(m).__name__}(momentum=None) keeps a cumulative average",
                        "ocdl's batchnorm uses an exponential average: give a momentum in "
                        "[0, 1)")
    if not 0 <= m.momentum < 1:
        raise at.refuse(f"{type(m).__name__}(momentum={m.momentum})",
                        "ocdl's batchnorm takes a momentum in [0, 1)")
    tensors = {"weight": m.weight, "bias": m.bias} if m.affine else {}
    return Layer("batchnorm", {"eps": float(m.eps), "momentum": float(m.momentum),
                               "affine": bool(m.affine)}, tensors=tensors,
                 buffers={"running_mean": m.running_mean, "running_var": m.running_var})


def _hardtanh(at: At, lo: float, hi: float) -> Layer:
    if not lo < hi:
        raise at.refuse(f"hardtanh with min {lo} ≥ max {hi}", "give min_val < max_val")
    return Layer("hardtanh", {"min": float(lo), "max": float(hi)})


def _pool(at: At, op: str, kernel: Any, stride: Any, padding: Any, *, dilation: Any = 1,
          ceil_mode: bool = False, extra: str = "") -> Layer:
    _sample(at, at.first, (3,), op)
    if extra:
        raise at.refuse(extra, f"ocdl's {op} has no such option")
    if _pair(dilation) != (1, 1):
        raise at.refuse(f"{op} with dilation {dilation}", "use dilation=1")
    if ceil_mode:
        raise at.refuse(f"{op} with ceil_mode=True", "ocdl rounds output sizes down: use "
                        "ceil_mode=False (pad instead)")
    k = _pair(kernel)
    s = _pair(stride) if stride not in (None, ()) and stride != [] else k
    return Layer(op, {"kernel": k, "stride": s, "padding": _pair(padding)})


def _maxpool(at: At, m: nn.MaxPool2d) -> Layer:
    extra = "MaxPool2d(return_indices=True)" if m.return_indices else ""
    return _pool(at, "maxpool", m.kernel_size, m.stride, m.padding, dilation=m.dilation,
                 ceil_mode=m.ceil_mode, extra=extra)


def _avgpool(at: At, m: nn.AvgPool2d) -> Layer:
    return _pool(at, "avgpool", m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                 extra=_avg_extra(m.padding, m.count_include_pad, m.divisor_override))


def _avg_extra(padding: Any, count_include_pad: bool, divisor_override: Any) -> str:
    if divisor_override is not None:
        return f"avg_pool2d with divisor_override={divisor_override}"
    if not count_include_pad and _pair(padding) != (0, 0):
        return "avg_pool2d with count_include_pad=False and padding (ocdl counts the padding)"
    return ""


def _adaptive(at: At, op: str, output_size: Any, return_indices: bool = False) -> Layer:
    if return_indices:
        raise at.refuse("adaptive max pooling with return_indices=True",
                        "use return_indices=False")
    c, h, w = _sample(at, at.first, (3,), f"adaptive {op}")
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = oh or h, ow or w
    if h % oh or w % ow:
        raise at.refuse(f"adaptive pooling of {h}×{w} to {oh}×{ow}: the windows differ in size",
                        "choose an output size that divides the input, or a fixed "
                        "MaxPool2d/AvgPool2d")
    k = (h // oh, w // ow)  # equal windows: an ordinary pool with kernel = stride = size/out
    return Layer(op, {"kernel": k, "stride": k, "padding": (0, 0)})


def _flatten(at: At, src: fx.Node) -> Layer | Alias:
    """A reshape that keeps the batch and flattens each sample is ocdl's flatten (or nothing,
    for a sample that is flat already); any other reshape is refused."""
    full_in, full_out = at.shape(src), at.out
    n = math.prod(full_in[1:])
    if full_out != (full_in[0], n):
        raise at.refuse(f"reshapes {list(full_in)} to {list(full_out)}",
                        "ocdl reshapes only to (batch, features): flatten(x, 1) or "
                        "x.view(x.size(0), -1)")
    return Alias(src) if len(full_in) == 2 else Layer("flatten", inputs=[src])


def _dropout(at: At, p: float) -> Layer:
    if not 0 <= p < 1:
        raise at.refuse(f"dropout with p={p}", "ocdl's dropout takes p in [0, 1)")
    return Layer("dropout", {"p": float(p)})


def _nn_flatten(at: At, m: nn.Flatten) -> Layer | Alias:
    return _flatten(at, at.tensor(at.first, "the input"))


def _dropout_module(at: At, m: nn.Dropout) -> Layer:
    return _dropout(at, m.p)


def _identity(at: At, m: nn.Module) -> Alias:
    return Alias(at.tensor(at.first, "the input"))


def _adaptive_module(op: str) -> Callable[[At, nn.Module], Layer]:
    return lambda at, m: _adaptive(at, op, m.output_size)


MODULES: dict[type, Callable[[At, Any], Mapped]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: lambda at, m: Layer("relu"),
    nn.Tanh: lambda at, m: Layer("tanh"),
    nn.Sigmoid: lambda at, m: Layer("sigmoid"),
    nn.Hardtanh: lambda at, m: _hardtanh(at, m.min_val, m.max_val),
    nn.ReLU6: lambda at, m: _hardtanh(at, 0.0, 6.0),
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: _adaptive_module("avgpool"),
    nn.AdaptiveMaxPool2d: lambda at, m: _adaptive(at, "maxpool", m.output_size,
                                                  m.return_indices),
    nn.Flatten: _nn_flatten,
    nn.Dropout: _dropout_module,
    nn.Identity: _identity,
}
