"""BatchNorm folded into the layer before it, for inference.

A dense or conv2d stage y = W x (+ b) whose output only an eval-mode batchnorm stage reads,
z = γ (y − μ)/sqrt(σ² + ε) + β, is one layer

    z = s ⊙ (W x) + c,    s = γ / sqrt(σ² + ε),    c = β − s·μ (+ s·b with a bias b)

per output unit (per output channel for conv2d), with W untouched: a discrete W keeps its exact
levels, and the deployed layer is W plus the two vectors s and c (γ = 1, β = 0 without affine).
s and c are computed in float64 and stored in the system's dtype.

:func:`fold_pairs` finds the pairs, :func:`scale_shift` computes (s, c), and
:func:`fold_batchnorm` gives the float ``nn.Module`` of a System with every pair folded
(:class:`ScaleShift` around an ``nn.Linear``/``nn.Conv2d`` without bias, the batchnorm stage an
``nn.Identity``): it computes what ``System.to_module()`` does, to rounding.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

FOLDABLE = ("dense", "conv2d")


def fold_pairs(system: Any) -> dict[str, Any]:
    """Layer stage name → the batchnorm stage folded into it: each dense/conv2d stage whose
    output is read by a batchnorm stage and by nothing else (top level or inside a residual
    block's chain of inner stages)."""
    pairs: dict[str, Any] = {}
    top = system.stages
    for t, st in enumerate(top[:-1]):
        nxt = top[t + 1]
        readers = [u for u in top if t + 1 in u.inputs]
        if (st.op.name in FOLDABLE and not st.children and nxt.op.name == "batchnorm"
                and readers == [nxt] and nxt.inputs == (t + 1,)):
            pairs[st.name] = nxt
    for st in system.all_stages():
        for a, b in zip(st.children, st.children[1:]):  # a residual block's chain
            if a.op.name in FOLDABLE and not a.children and b.op.name == "batchnorm":
                pairs[a.name] = b
    return pairs


def scale_shift(system: Any, layer: Any, bn: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, c) of the layer stage ``layer`` followed by the batchnorm stage ``bn`` (module
    docstring), in the system's dtype."""
    f64 = torch.float64
    mean = bn.buffers["running_mean"].to(f64)
    var = bn.buffers["running_var"].to(f64)
    gamma = system.theta[bn.controls["weight"]].to(f64) if "weight" in bn.controls else 1.0
    beta = system.theta[bn.controls["bias"]].to(f64) if "bias" in bn.controls else 0.0
    s = gamma / torch.sqrt(var + float(bn.params["eps"])) * torch.ones_like(mean)
    c = beta - s * mean
    if "bias" in layer.controls:
        c = c + s * system.theta[layer.controls["bias"]].to(f64)
    return s.to(system.dtype).detach().clone(), c.to(system.dtype).detach().clone()


class ScaleShift(nn.Module):
    """s ⊙ inner(x) + c per output unit (dim 1 of the output: a feature or a channel)."""

    def __init__(self, inner: nn.Module, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return torch.addcmul(self.shift.view(shape), y, self.scale.view(shape))


def _bare(system: Any, st: Any) -> nn.Module:
    """The stage's layer without its bias: ``nn.Linear``/``nn.Conv2d`` holding W only."""
    from ..to_torch import _pair
    p, w = st.params, system.theta[st.controls["weight"]]
    if st.op.name == "dense":
        layer: nn.Module = nn.Linear(w.shape[1], w.shape[0], bias=False)
    else:
        layer = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), _pair(p["stride"]),
                          _pair(p["padding"]), bias=False)
    layer = layer.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w.detach())
    return layer


def fold_batchnorm(system: Any) -> nn.Module:
    """The ``nn.Module`` of ``system`` (eval mode) with every dense/conv2d → batchnorm pair
    (:func:`fold_pairs`) one layer s ⊙ (W x) + c, its batchnorm stage an ``nn.Identity``; every
    other stage as :meth:`ocdl.system.System.to_module` makes it."""
    from ..to_torch import _layer, assemble
    pairs = fold_pairs(system)
    folded_bn = {bn.name for bn in pairs.values()}
    layers: dict[str, nn.Module] = {}
    for st in system.all_stages():
        if st.children:
            continue
        if st.name in pairs:
            s, c = scale_shift(system, st, pairs[st.name])
            layers[st.name] = ScaleShift(_bare(system, st), s, c)
        elif st.name in folded_bn:
            layers[st.name] = nn.Identity()
        else:
            layers[st.name] = _layer(system, st)
    return assemble(system, layers)
