"""Parameter-free maps: activations, pooling, flatten, dropout.

relu(x) = max(x, 0); tanh; sigmoid(x) = 1/(1+e^{−x}); hardtanh(x) = clip(x, min, max);
maxpool / avgpool over k×k windows; flatten (C, H, W) → (C·H·W); dropout x·m/(1−p) with a
Bernoulli(1−p) mask m in training and the identity in evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ShapeError, SpecError
from .base import Op, Param, numel, register
from .layers import conv_out


class _Activation(Op):
    fn = staticmethod(torch.relu)
    cost = 1

    def flops(self, p, in_shapes, out):
        return self.cost * numel(out)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return self.fn(xs[0])


@register
class ReLU(_Activation):
    name, doc = "relu", "max(x, 0) elementwise"
    fn = staticmethod(torch.relu)


@register
class Tanh(_Activation):
    name, doc, cost = "tanh", "tanh(x) elementwise", 4
    fn = staticmethod(torch.tanh)


@register
class Sigmoid(_Activation):
    name, doc, cost = "sigmoid", "1/(1+exp(-x)) elementwise", 4
    fn = staticmethod(torch.sigmoid)


@register
class HardTanh(_Activation):
    name, doc = "hardtanh", "clip(x, min, max) elementwise"
    params = {"min": Param("number", -1.0, "lower clip value"),
              "max": Param("number", 1.0, "upper clip value")}

    def out_shape(self, p, in_shapes, where):
        if not p["min"] < p["max"]:
            raise SpecError(f"hardtanh needs min < max, got min={p['min']}, max={p['max']}",
                            path=where)
        return in_shapes[0]

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return F.hardtanh(xs[0], p["min"], p["max"])


class _Pool(Op):
    params = {"kernel": Param("pair", (2, 2), "window size: k or [k_h, k_w]"),
              "stride": Param("pair", None, "stride (default: the window size)"),
              "padding": Param("nonnegpair", (0, 0), "zero padding: p or [p_h, p_w]")}

    def _stride(self, p):
        return p["stride"] or p["kernel"]

    def out_shape(self, p, in_shapes, where):
        s = in_shapes[0]
        if len(s) != 3:
            raise ShapeError(f"{self.name} needs a (channels, height, width) input, got {list(s)}",
                             path=where)
        (kh, kw), (sh, sw), (ph, pw) = p["kernel"], self._stride(p), p["padding"]
        if ph > kh // 2 or pw > kw // 2:
            raise SpecError(f"padding {[ph, pw]} must be at most half the window {[kh, kw]}",
                            path=where)
        h, w = conv_out(s[1], kh, sh, ph), conv_out(s[2], kw, sw, pw)
        if h < 1 or w < 1:
            raise ShapeError(f"window {[kh, kw]} does not fit input shape {list(s)}", path=where)
        return (s[0], h, w)

    def flops(self, p, in_shapes, out):
        kh, kw = p["kernel"]
        return kh * kw * numel(out)


@register
class MaxPool(_Pool):
    name, doc = "maxpool", "max over k×k windows"

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return F.max_pool2d(xs[0], p["kernel"], self._stride(p), p["padding"])


@register
class AvgPool(_Pool):
    name, doc = "avgpool", "mean over k×k windows"

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return F.avg_pool2d(xs[0], p["kernel"], self._stride(p), p["padding"])


@register
class Flatten(Op):
    name, doc = "flatten", "reshape a sample to a vector"

    def out_shape(self, p, in_shapes, where):
        return (numel(in_shapes[0]),)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return xs[0].flatten(1)


@register
class Dropout(Op):
    name, doc = "dropout", "x·m/(1−p), m ~ Bernoulli(1−p), in training; identity in evaluation"
    params = {"p": Param("prob", 0.5, "probability of zeroing an element")}
    random = True

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        x = xs[0]
        if not train or p["p"] == 0:
            return x
        mask = ctx.get("mask")
        if mask is None or mask.shape != x.shape:
            keep = 1.0 - p["p"]
            mask = torch.empty_like(x).bernoulli_(keep).div_(keep)
            ctx["mask"] = mask
        return x * mask


@register
class Add(Op):
    name, doc = "add", "sum of its inputs (a merge)"
    min_inputs, max_inputs = 2, 64

    def out_shape(self, p, in_shapes, where):
        from .base import same_shapes
        return same_shapes(in_shapes, where, "add")

    def flops(self, p, in_shapes, out):
        return (len(in_shapes) - 1) * numel(out)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@register
class Concat(Op):
    name, doc = "concat", "concatenation of its inputs along a sample axis (a merge)"
    params = {"axis": Param("nonnegint", 0, "sample axis (0: channels / features)")}
    min_inputs, max_inputs = 2, 64

    def out_shape(self, p, in_shapes, where):
        a = p["axis"]
        first = in_shapes[0]
        if a >= len(first):
            raise ShapeError(f"axis {a} is out of range for input shape {list(first)}", path=where)
        for s in in_shapes[1:]:
            if len(s) != len(first) or any(x != y for i, (x, y) in enumerate(zip(first, s))
                                           if i != a):
                raise ShapeError(f"concat along axis {a} needs equal other axes, got {list(first)}"
                                 f" and {list(s)}", path=where)
        out = list(first)
        out[a] = sum(s[a] for s in in_shapes)
        return tuple(out)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return torch.cat(list(xs), dim=p["axis"] + 1)
