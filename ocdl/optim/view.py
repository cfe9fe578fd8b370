"""A torch optimizer's parameters seen as the controls θ of a System.

The solver parts (:mod:`ocdl.solvers`) read a System through four attributes: ``control`` (name →
:class:`ocdl.system.Control`: set, shape, l1 and l2 weights), ``controls`` (the same, in order),
``theta`` (name → tensor, updated in place) and ``device`` / ``dtype``. :class:`ParamControls`
is that view of a user's parameters, so the closed-form argmax, the running average's draw of
M̄, the sparsity target and the projection onto box sets run on an ``nn.Module``'s parameters
unchanged. It holds no copies: ``theta[name]`` is the parameter itself.

Each parameter is one control: its name (the group's ``param_names``, or ``<group>.<index>``),
its group's set (``control``) and l1 weight λ (``l1``: the running cost λ‖θ‖₁, which the
optimizer accounts for and the loss must not contain). ``l2`` is 0: a quadratic cost belongs in
the loss the user differentiates, where it enters M = −∇J.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..controls import ControlSet
from ..system import Control


class ParamControls:
    """The controls view of ``params`` (names, tensors, sets and l1 weights, one entry each)."""

    def __init__(self, names: Sequence[str], params: Sequence[torch.Tensor],
                 csets: Sequence[ControlSet], l1: Sequence[float]):
        self.controls = [Control(name=n, t=i, stage=n, param="weight", shape=tuple(p.shape),
                                 cset=c, l1=float(lam), l2=0.0, weight=p.dim() >= 2)
                         for i, (n, p, c, lam) in enumerate(zip(names, params, csets, l1))]
        self.control = {c.name: c for c in self.controls}
        self.theta: dict[str, torch.Tensor] = dict(zip(names, params))
        disc = [p for p, c in zip(params, csets) if c.discrete]
        first = disc[0] if disc else params[0] if params else torch.empty(0)
        self.device, self.dtype = first.device, first.dtype  # the finite-set tensors' (one kind)

    def names(self, discrete: bool) -> list[str]:
        """The names of the finite-set (``discrete``) or the real/box controls, in order."""
        return [c.name for c in self.controls if c.cset.discrete == discrete]
