"""First-order updates on lists of tensors, with torch's own fused / foreach kernels.

The solvers keep optimiser moments in their (checkpointable) state dicts, keyed by control name,
and call torch's functional optimisers (``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``), the
same code ``torch.optim.Adam``/``SGD`` run, so results match them exactly. Gradients passed here
are ∇J (descent direction −g); solvers build them from M = −∇J as g = −M (+ λ sign θ for an l1
cost on a real control, its subgradient).
"""
from __future__ import annotations

from typing import Any

import inspect

import torch
import torch.optim.adam as _adam
import torch.optim.sgd as _sgd

from ..controls import ControlSet
from ..system import laid_out_like

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# torch ≥ 2.8 folds AdamW into adam(decoupled_weight_decay=...); older ones have adamw()
_ADAM_DECOUPLED = "decoupled_weight_decay" in inspect.signature(_adam.adam).parameters


def fused_ok(tensors: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam kernel runs on these tensors (CPU or CUDA, float types)."""
    return bool(tensors) and all(t.dtype in _FUSED_DTYPES and t.device.type in ("cpu", "cuda")
                                 for t in tensors)


def like_params(grads: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``grads`` with each one laid out as its parameter (same strides), copying only those that
    differ (:func:`ocdl.system.laid_out_like`). torch's fused kernels require it (CUDA: "params,
    grads, exp_avgs, and exp_avg_sqs must have same dtype, device, and layout"); ``param.grad``
    obeys it by autograd's layout contract, but ``torch.autograd.grad`` does not."""
    return [laid_out_like(g, p) for g, p in zip(grads, params)]


def adam_init(params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Zero moments and step counters (float32 0-d tensors on the parameter's device, as
    ``torch.optim.Adam`` keeps them for its fused kernel)."""
    return {"m": {k: torch.zeros_like(v, memory_format=torch.preserve_format).detach()
                  for k, v in params.items()},
            "v": {k: torch.zeros_like(v, memory_format=torch.preserve_format).detach()
                  for k, v in params.items()},
            "step": {k: torch.zeros((), dtype=torch.float32, device=v.device)
                     for k, v in params.items()}}


def adam_step(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
              state: dict[str, Any], *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
              amsgrad: bool = False, maximize: bool = False) -> None:
    """One Adam (``decoupled``: AdamW) step on ``params`` in place, moments in ``state``.

    With ``maximize`` the step ascends ``grads`` (pass M = −∇J to descend J: Adam on −H)."""
    names = [k for k in params if k in grads]
    if not names:
        return
    ps = [params[k].detach() for k in names]
    gs = [grads[k] for k in names]
    if amsgrad:
        vmax = state.setdefault("vmax", {})
        for k in names:
            if k not in vmax:
                vmax[k] = torch.zeros_like(params[k]).detach()
    fused = fused_ok(ps)
    if fused:
        gs = like_params(gs, ps)
    fn, extra = _adam.adam, {}
    if decoupled and weight_decay:
        if _ADAM_DECOUPLED:
            extra = {"decoupled_weight_decay": True}
        else:  # pragma: no cover - torch < 2.8
            import torch.optim.adamw as _adamw
            fn = _adamw.adamw
    with torch.no_grad():
        fn(ps, gs, [state["m"][k] for k in names], [state["v"][k] for k in names],
           [state["vmax"][k] for k in names] if amsgrad else [],
           [state["step"][k] for k in names],
           foreach=None if fused else True, fused=fused or None, amsgrad=amsgrad,
           beta1=betas[0], beta2=betas[1], lr=lr, weight_decay=weight_decay, eps=eps,
           maximize=maximize, **extra)


def sgd_init(params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Momentum buffers, created lazily by the first step (as ``torch.optim.SGD`` does)."""
    return {"buf": {}}


def sgd_step(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
             state: dict[str, Any], *, lr: float, momentum: float = 0.0, dampening: float = 0.0,
             nesterov: bool = False, weight_decay: float = 0.0, maximize: bool = False) -> None:
    """One SGD step (momentum, Nesterov, L2 weight decay) in place, buffers in ``state``."""
    names = [k for k in params if k in grads]
    if not names:
        return
    bufs: list[torch.Tensor | None] = [state["buf"].get(k) for k in names]
    with torch.no_grad():
        _sgd.sgd([params[k].detach() for k in names], [grads[k] for k in names], bufs,
                 foreach=True, weight_decay=weight_decay, momentum=momentum, lr=lr,
                 dampening=dampening, nesterov=nesterov, maximize=maximize)
    if momentum != 0.0:
        for k, b in zip(names, bufs):
            state["buf"][k] = b


def descent_grads(system: Any, M: dict[str, torch.Tensor], names: list[str]
                  ) -> dict[str, torch.Tensor]:
    """g = ∇J of the full objective for real/box controls: −M + λ sign(θ) where the control has an
    l1 cost (its subgradient, 0 at θ = 0). Reuses M's storage (negated in place)."""
    gs = [M[k] for k in names]
    torch._foreach_neg_(gs)
    out = dict(zip(names, gs))
    for k in names:
        lam = system.control[k].l1
        if lam:
            out[k].add_(torch.sign(system.theta[k].detach()), alpha=lam)
    return out


def ascent_direction(system: Any, M: dict[str, torch.Tensor], names: list[str]
                     ) -> dict[str, torch.Tensor]:
    """∇_θ Σ_t H_t of the full Hamiltonian, M − λ sign θ = −∇J (an ascent direction; pass it with
    ``maximize=True``). Modifies M's storage in place for controls with an l1 cost."""
    with torch.no_grad():
        for n in names:
            lam = system.control[n].l1
            if lam:
                M[n].sub_(torch.sign(system.theta[n].detach()), alpha=lam)
    return {n: M[n] for n in names}


def project_(system: Any, names: list[str]) -> None:
    """θ ← Π_Θ(θ) for the box controls among ``names`` (others are unconstrained or discrete)."""
    with torch.no_grad():
        for k in names:
            cset: ControlSet = system.control[k].cset
            if cset.kind == "box":
                system.theta[k].clamp_(cset.lo, cset.hi)
