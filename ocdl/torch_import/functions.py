"""The functions (``F.relu``, ``torch.cat``, ``operator.add``) and tensor methods (``x.view``,
``x.size``) that map onto ocdl stages, as :mod:`.layers` maps the layers (see its docstring)."""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .layers import (SHAPE, Alias, At, Layer, Mapped, Meta, _adaptive, _avg_extra, _dropout,
                     _flatten, _hardtanh, _pool)


def _activation(op: str) -> Callable[[At], Layer]:
    def fn(at: At) -> Layer:
        at.bind("input, inplace=False")
        return Layer(op)
    return fn


def _f_hardtanh(at: At) -> Layer:
    a = at.bind("input, min_val=-1.0, max_val=1.0, inplace=False")
    return _hardtanh(at, a["min_val"], a["max_val"])


def _f_relu6(at: At) -> Layer:
    at.bind("input, inplace=False")
    return _hardtanh(at, 0.0, 6.0)


def _f_maxpool(at: At) -> Layer:
    a = at.bind("input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
                "return_indices=False")
    extra = "max_pool2d(return_indices=True)" if a["return_indices"] else ""
    return _pool(at, "maxpool", a["kernel_size"], a["stride"], a["padding"],
                 dilation=a["dilation"], ceil_mode=a["ceil_mode"], extra=extra)


def _f_avgpool(at: At) -> Layer:
    a = at.bind("input, kernel_size, stride=None, padding=0, ceil_mode=False, "
                "count_include_pad=True, divisor_override=None")
    return _pool(at, "avgpool", a["kernel_size"], a["stride"], a["padding"],
                 ceil_mode=a["ceil_mode"], extra=_avg_extra(a["padding"], a["count_include_pad"],
                                                            a["divisor_override"]))


def _f_adaptive(op: str) -> Callable[[At], Layer]:
    def fn(at: At) -> Layer:
        a = at.bind("input, output_size, return_indices=False")
        return _adaptive(at, op, a["output_size"], a["return_indices"])
    return fn


def _f_dropout(at: At) -> Layer:
    # training= follows the module's mode (self.training) in practice; ocdl's dropout draws
    # masks in training and is the identity in evaluation
    a = at.bind("input, p=0.5, training=True, inplace=False")
    return _dropout(at, a["p"])


def _f_flatten(at: At) -> Layer | Alias:
    a = at.bind("input, start_dim=0, end_dim=-1")
    return _flatten(at, at.tensor(a["input"], "the input"))


def _reshape(at: At) -> Layer | Alias:
    return _flatten(at, at.tensor(at.first, "the input"))


def _add(at: At) -> Layer:
    args = list(at.node.args)
    alpha = at.node.kwargs.get("alpha", 1)
    if set(at.node.kwargs) - {"alpha"} or alpha != 1 or len(args) != 2:
        raise at.refuse("an addition with other arguments than two tensors (alpha, out)",
                        "write a + b")
    a, b = (at.tensor(v, "an operand of +") for v in args)
    if a is b:
        raise at.refuse("adds a tensor to itself (x + x)", "ocdl's add reads distinct stages; "
                        "this is 2·x, which ocdl has no op for")
    if at.shape(a) != at.shape(b):
        raise at.refuse(f"adds shapes {list(at.shape(a))} and {list(at.shape(b))} (broadcast)",
                        "ocdl adds tensors of one shape")
    return Layer("add", inputs=[a, b])


def _cat(at: At) -> Layer:
    a = at.bind("tensors, dim=0")
    parts = a["tensors"]
    if not isinstance(parts, (list, tuple)) or len(parts) < 2:
        raise at.refuse("torch.cat of fewer than two tensors", "concatenate two or more")
    nodes = [at.tensor(v, "a part of torch.cat") for v in parts]
    if len(set(nodes)) != len(nodes):
        raise at.refuse("concatenates a tensor with itself", "ocdl's concat reads distinct "
                        "stages")
    rank = len(at.out)
    dim = a["dim"] + rank if a["dim"] < 0 else a["dim"]
    if dim == 0:
        raise at.refuse("torch.cat along the batch dimension (dim=0)", "concatenate along a "
                        "sample axis (dim ≥ 1)")
    return Layer("concat", {"axis": dim - 1}, inputs=nodes)


def _alias_method(at: At) -> Alias:
    if len(at.node.args) != 1 or at.node.kwargs:
        raise at.refuse(f"{at.node.target} with arguments", "call it without arguments")
    return Alias(at.tensor(at.first, "the input"))


def _meta(at: At) -> Meta:
    if SHAPE in at.node.meta:  # x[:, :1], x.T, x.dim… that give a tensor: not a size
        what = {"getitem": "indexing or slicing a tensor (x[...])"}.get(
            getattr(at.node.target, "__name__", str(at.node.target)),
            f"{_name_of(at.node.target)} giving a tensor")
        raise at.refuse(f"{what} has no ocdl op", f"ocdl maps {SUPPORTED}")
    return Meta()


FUNCTIONS: dict[Any, Callable[[At], Mapped]] = {
    F.relu: _activation("relu"), torch.relu: _activation("relu"),
    torch.tanh: _activation("tanh"), F.tanh: _activation("tanh"),
    torch.sigmoid: _activation("sigmoid"), F.sigmoid: _activation("sigmoid"),
    F.hardtanh: _f_hardtanh, F.relu6: _f_relu6,
    F.max_pool2d: _f_maxpool, F.avg_pool2d: _f_avgpool,
    F.adaptive_avg_pool2d: _f_adaptive("avgpool"), F.adaptive_max_pool2d: _f_adaptive("maxpool"),
    F.dropout: _f_dropout,
    torch.flatten: _f_flatten, torch.reshape: _reshape,
    operator.add: _add, operator.iadd: _add, torch.add: _add,
    torch.cat: _cat, torch.concat: _cat, torch.concatenate: _cat,
    getattr: _meta, operator.getitem: _meta,
}

METHODS: dict[str, Callable[[At], Mapped]] = {
    "relu": _activation("relu"), "tanh": _activation("tanh"), "sigmoid": _activation("sigmoid"),
    "flatten": _f_flatten, "view": _reshape, "reshape": _reshape,
    "add": _add, "add_": _add, "contiguous": _alias_method,
    "size": _meta, "dim": _meta,
}

SUPPORTED = ("Linear, Conv2d, BatchNorm1d/2d, ReLU, ReLU6, Tanh, Sigmoid, Hardtanh, MaxPool2d, "
             "AvgPool2d, AdaptiveAvg/MaxPool2d, Flatten, Dropout, Identity, their functional "
             "forms, +, torch.cat, flatten/view/reshape to (batch, features)")


def _name_of(target: Any) -> str:
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or repr(target)
    return f"{mod}.{name}" if mod and not mod.startswith("_") else name
