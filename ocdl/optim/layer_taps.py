"""Layer taps: each layer's state x_t, output x_{t+1} and costate p_{t+1}, read from an
``nn.Module`` during the user's own forward and backward passes (DESIGN.md §1).

A layer is a stage x_{t+1} = f_t(x_t, θ_t) whose function ocdl can re-evaluate at a candidate θ:

* ``nn.Linear``: f(x, θ) = F.linear(x, W, b);
* ``nn.Conv1d/2d/3d``: f(x, θ) = the module's own convolution (``_conv_forward``: stride,
  padding, padding mode, dilation, groups) with the candidate W, b;
* ``nn.BatchNorm1d/2d/3d``: f(x, θ) = γ·(x − μ)/√(σ² + ε) + β with the batch's statistics μ, σ²
  in training mode (a function of the whole batch, as in ocdl's ``batchnorm`` stage), the running
  ones in evaluation mode; the running statistics are never updated by a re-evaluation.

A forward hook on each such layer records, when the module is in training mode and grad is
enabled, x_t (the layer's input, detached) and x_{t+1} (its output, detached, with its version
counter), and registers a tensor hook on the output that receives ∂ℓ/∂x_{t+1}; it refuses a
layer run in another precision than its parameters' (autocast). The user's loss ℓ
is J, the batch mean (the same convention as M = −.grad, :mod:`ocdl.optim.base`), so

    p_{t+1} = −∂J/∂x_{t+1}

with the 1/S of DESIGN.md §1 inside it: p_{s,T} = −(1/S)∇Φ(x_{s,T}, y_s), exactly
:meth:`ocdl.System.costates`' p on the same network. A tensor hook registered before an in-place
op on the output (``nn.ReLU(inplace=True)``) receives the gradient of the value before it, so p
is right; x_{t+1} is then re-evaluated at θ^k (:meth:`Tap.x_next`). A layer called several times
per forward pass gives one tap per call (shared weights: Σ over calls). Gradient accumulation
(several backward passes before one step) keeps every call's tap; each backward through the same
output adds to its p.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SolverError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
LAYERS = (nn.Linear,) + CONVS + BATCHNORMS
"""The module types whose f_t ocdl re-evaluates (exact types: subclasses may change forward)."""


def is_layer(module: nn.Module) -> bool:
    """Whether ``module`` is one of :data:`LAYERS` (its exact type)."""
    return type(module) in LAYERS


def layer_function(module: nn.Module, x: torch.Tensor, theta: dict[str, torch.Tensor]
                   ) -> torch.Tensor:
    """f_t(x, θ) of ``module`` with its parameters taken from ``theta`` by attribute name
    (``weight``, ``bias``), the same ops as the module's forward, no buffer updated."""
    if isinstance(module, nn.Linear):
        return F.linear(x, theta["weight"], theta.get("bias"))
    if isinstance(module, CONVS):
        return module._conv_forward(x, theta["weight"], theta.get("bias"))
    bn: Any = module
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    return F.batch_norm(x, None if batch_stats else bn.running_mean,
                        None if batch_stats else bn.running_var, theta.get("weight"),
                        theta.get("bias"), batch_stats, 0.0, bn.eps)


def layer_theta(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own parameters θ_t by attribute name, in its order (weight, bias)."""
    return dict(module.named_parameters(recurse=False))


@dataclass
class Tap:
    """One call of a layer: its module, x_t, x_{t+1} (and its version at the forward pass) and
    p_{t+1} (None until a backward pass reaches the output)."""

    module: nn.Module
    x: torch.Tensor
    out: torch.Tensor
    version: int
    p_next: torch.Tensor | None = None

    def receive(self, grad: torch.Tensor) -> None:
        """p_{t+1} ← p_{t+1} − ∂J/∂x_{t+1} (the first backward pass sets it)."""
        with torch.no_grad():
            self.p_next = grad.neg() if self.p_next is None else self.p_next - grad

    def x_next(self) -> torch.Tensor:
        """x_{t+1} = f_t(x_t, θ^k): the recorded output, or, where an in-place op changed it
        after the forward pass, the layer re-evaluated (call before θ moves)."""
        if self.out._version == self.version:
            return self.out
        with torch.no_grad():
            return layer_function(self.module, self.x, layer_theta(self.module)).detach()


def _forward_hook(ref: "weakref.ref[LayerTaps]", module: nn.Module, args: tuple,
                  output: Any) -> None:
    taps = ref()
    if taps is None or not module.training or not torch.is_grad_enabled():
        return
    if not isinstance(output, torch.Tensor) or not output.requires_grad:
        return
    if len(args) != 1 or not isinstance(args[0], torch.Tensor):
        raise SolverError(f"ocdl.optim: layer {type(module).__name__} was called with "
                          f"{len(args)} positional arguments; a tapped layer takes one tensor")
    dtypes = {p.dtype for p in module.parameters(recurse=False)}
    if dtypes and output.dtype not in dtypes:
        raise SolverError(f"ocdl.optim: layer {type(module).__name__} returned "
                          f"{output.dtype} for {sorted(map(str, dtypes))} parameters (autocast?); "
                          "the augmented Hamiltonian's feasibility terms need the parameters' "
                          "precision: run without autocast, or pass continuous='adam'")
    x = args[0]
    tap = Tap(module, x.detach(), output.detach(), output._version)
    output.register_hook(tap.receive)
    taps.taps.append(tap)


class LayerTaps:
    """Forward hooks on the :data:`LAYERS` of ``model`` among ``modules`` (name → module); the
    calls they record, :attr:`taps`, are consumed by the optimizer's step and cleared by it and
    by ``zero_grad``. The hooks hold this object weakly and are removed with it
    (:meth:`remove`)."""

    def __init__(self, modules: Iterable[tuple[str, nn.Module]]):
        self.modules = dict(modules)
        self.taps: list[Tap] = []
        ref = weakref.ref(self)
        self._handles = [m.register_forward_hook(
            lambda mod, args, out, _ref=ref: _forward_hook(_ref, mod, args, out))
            for m in self.modules.values()]

    def ready(self) -> list[Tap]:
        """The recorded calls that a backward pass has reached (p_{t+1} known), in call order."""
        return [t for t in self.taps if t.p_next is not None]

    def clear(self) -> None:
        self.taps = []

    def remove(self) -> None:
        """Remove the hooks from the model (and forget the recorded calls)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.clear()

    def __del__(self) -> None:
        for h in getattr(self, "_handles", []):
            h.remove()
