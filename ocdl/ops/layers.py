"""Parameterised layers: dense, conv2d, batchnorm.

dense:      f(x, W, b) = W x + b           W ∈ Θ^{units×in}
conv2d:     f(x, W, b) = W ⋆ x + b         W ∈ Θ^{C_out×C_in×k_h×k_w}
batchnorm:  f(x, γ, β) = γ (x − μ_B)/sqrt(σ²_B + ε) + β   (batch statistics in training)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..controls import Real
from ..errors import ShapeError
from .base import ControlDecl, Op, Param, numel, real_bias, real_weight, register
from . import sync_batchnorm


@register
class Dense(Op):
    name = "dense"
    doc = "fully connected layer W x + b on a vector input"
    params = {"units": Param("posint", doc="number of outputs"),
              "bias": Param("bool", True, "add a bias vector b")}

    def out_shape(self, p, in_shapes, where):
        s = in_shapes[0]
        if len(s) != 1:
            raise ShapeError(f"dense needs a vector input, got shape {list(s)}; add a "
                             "'flatten' stage before it", path=where)
        return (p["units"],)

    def controls(self, p, in_shapes):
        n_in = in_shapes[0][0]
        decls = [real_weight((p["units"], n_in))]
        if p["bias"]:
            decls.append(real_bias((p["units"],), n_in))
        return decls

    def flops(self, p, in_shapes, out):
        return 2 * in_shapes[0][0] * p["units"] + (p["units"] if p["bias"] else 0)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return F.linear(xs[0], theta["weight"], theta.get("bias"))


def conv_out(n: int, k: int, s: int, pad: int) -> int:
    return (n + 2 * pad - k) // s + 1


@register
class Conv2d(Op):
    name = "conv2d"
    doc = "2-D convolution W ⋆ x + b on a (C, H, W) input"
    params = {"channels": Param("posint", doc="number of output channels"),
              "kernel": Param("pair", (3, 3), "kernel size: k or [k_h, k_w]"),
              "stride": Param("pair", (1, 1), "stride: s or [s_h, s_w]"),
              "padding": Param("nonnegpair", (0, 0), "zero padding: p or [p_h, p_w]"),
              "bias": Param("bool", True, "add a bias per output channel")}

    def out_shape(self, p, in_shapes, where):
        s = in_shapes[0]
        if len(s) != 3:
            raise ShapeError(f"conv2d needs a (channels, height, width) input, got shape {list(s)}",
                             path=where)
        (kh, kw), (sh, sw), (ph, pw) = p["kernel"], p["stride"], p["padding"]
        h, w = conv_out(s[1], kh, sh, ph), conv_out(s[2], kw, sw, pw)
        if h < 1 or w < 1:
            raise ShapeError(f"kernel {[kh, kw]} does not fit input shape {list(s)} with padding "
                             f"{[ph, pw]}; use a smaller kernel or more padding", path=where)
        return (p["channels"], h, w)

    def controls(self, p, in_shapes):
        c_in = in_shapes[0][0]
        kh, kw = p["kernel"]
        decls = [real_weight((p["channels"], c_in, kh, kw))]
        if p["bias"]:
            decls.append(real_bias((p["channels"],), c_in * kh * kw))
        return decls

    def flops(self, p, in_shapes, out):
        kh, kw = p["kernel"]
        per_out = 2 * in_shapes[0][0] * kh * kw + (1 if p["bias"] else 0)
        return per_out * numel(out)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        return F.conv2d(xs[0], theta["weight"], theta.get("bias"), stride=p["stride"],
                        padding=p["padding"])


@register
class BatchNorm(Op):
    name = "batchnorm"
    doc = ("batch normalisation over the channel axis (1-D for (C,) or (C, L) inputs, 2-D for "
           "(C, H, W)); scale γ and shift β are controls")
    params = {"eps": Param("posnumber", 1e-5, "ε added to the variance (the paper: 1e-4)"),
              "momentum": Param("prob", 0.1, "running-statistics momentum"),
              "affine": Param("bool", True, "learn the scale γ and shift β")}

    def out_shape(self, p, in_shapes, where):
        s = in_shapes[0]
        if len(s) not in (1, 2, 3):
            raise ShapeError(f"batchnorm needs a (C,), (C, L) or (C, H, W) input, got {list(s)}",
                             path=where)
        return tuple(s)

    def controls(self, p, in_shapes):
        if not p["affine"]:
            return []
        c = in_shapes[0][0]
        return [ControlDecl("weight", (c,), Real("ones"), weight=False),
                ControlDecl("bias", (c,), Real("zeros"), weight=False)]

    def buffer_numel(self, p, in_shapes):
        return 2 * in_shapes[0][0]

    def buffers(self, p, in_shapes):
        c = in_shapes[0][0]
        return {"running_mean": torch.zeros(c), "running_var": torch.ones(c)}

    def flops(self, p, in_shapes, out):
        return 4 * numel(out)

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        x = xs[0]
        use_running = update_stats or not train
        if train and sync_batchnorm.active():  # run.sync_bn: the global batch's statistics
            return sync_batchnorm.batch_norm(
                x, buffers["running_mean"] if update_stats else None,
                buffers["running_var"] if update_stats else None, theta.get("weight"),
                theta.get("bias"), momentum=p["momentum"], eps=p["eps"])
        return F.batch_norm(x, buffers["running_mean"] if use_running else None,
                            buffers["running_var"] if use_running else None,
                            theta.get("weight"), theta.get("bias"), training=train,
                            momentum=p["momentum"], eps=p["eps"])
