"""The residual stage: x_{t+1} = x_t + h · g(x_t, θ_t).

g is an inner chain of stages (its controls together form θ_t); this is the forward-Euler /
ResNet form of Li, Chen, Tai & E (JMLR 2018). The inner chain must map the input shape to itself.
"""
from __future__ import annotations

from .base import Op, Param, register


@register
class Residual(Op):
    name, doc = "residual", "x + h·g(x) around an inner list of stages g"
    params = {"h": Param("posnumber", 1.0, "step size h of the forward-Euler update")}
    composite = True

    def flops(self, p, in_shapes, out):
        from .base import numel
        return 2 * numel(out)  # the inner stages' FLOPs are added by the compiler
