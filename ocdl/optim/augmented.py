"""E-MSA's augmented Hamiltonian on the tapped layers of an ``nn.Module``, and its inner
maximisation over their real parameters (DESIGN.md §1; :mod:`ocdl.optim.layer_taps`).

With x_t, x_{t+1}, p_{t+1} of the current θ^k fixed (one :class:`Stage` per recorded call of a
layer), E-MSA maximises over the real θ_t of every tapped layer at once (their inputs are fixed,
so the sum over t is separable):

    Σ_t Σ_s [ H_t(x_{s,t}, p_{s,t+1}, θ) − ρ/2 ‖x_{s,t+1} − f_t(x_{s,t}, θ)‖²
                                         − ρ/2 ‖p_{s,t} − ∇_x H_t(x_{s,t}, p_{s,t+1}, θ)‖² ]

with H_t(x, p, θ) = p·f_t(x, θ) − λ‖θ‖₁ (the param groups' ``l1``; no other running cost is the
optimizer's) and the reference costate p_t = ∇_x H_t(x_t, p_{t+1}, θ^k), evaluated once before θ
moves. Each term is assembled in the order of :meth:`ocdl.System.augmented_hamiltonian` (one
evaluation of f_t serves H, the state error and, by a backward pass to x kept in the graph, ∇_x
H_t), so the inner gradients are those of ocdl's ``emsa`` solver bit for bit.

The inner maximiser (:func:`maximise`), as :func:`ocdl.solvers.inner_maximisation.maximise`:

* ``adam``: ``steps`` Adam ascents with the groups' ``lr``, ``betas``, ``eps`` and the
  parameters' own moments (``exp_avg``, ``exp_avg_sq``, ``step``), each followed by Π_Θ; the first
  ascends M − λ sign θ from ``.grad`` (at θ^k both feasibility terms and their gradients vanish),
  the others ∇_θ of the objective by double backward;
* ``lbfgs``: ``torch.optim.LBFGS`` on −objective for ``steps`` iterations per param group (its
  ``lr``), then Π_Θ; ``.grad`` is restored afterwards.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .layer_taps import Tap, layer_function, layer_theta

INNER = ("adam", "lbfgs")


@dataclass
class Stage:
    """One recorded call of a layer with its fixed x_t, x_{t+1}, p_{t+1} and reference p_t."""

    tap: Tap
    x_next: torch.Tensor
    p_ref: torch.Tensor


def stages_of(taps: Sequence[Tap]) -> list[Stage]:
    """The stages of the recorded calls at θ^k: x_{t+1} (re-evaluated where an in-place op
    changed it) and p_t = ∇_x H_t(x_t, p_{t+1}, θ^k) (without the l1 cost, constant in x)."""
    out = []
    for tap in taps:
        xs = tap.x.detach().requires_grad_(True)
        with torch.enable_grad():
            f = layer_function(tap.module, xs, layer_theta(tap.module))
            H = (tap.p_next * f).sum()
            (p_ref,) = torch.autograd.grad(H, [xs])
        out.append(Stage(tap, tap.x_next(), p_ref.detach()))
    return out


def augmented_value(stage: Stage, rho: torch.Tensor, l1: dict[int, float], *,
                    create_graph: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_s of the augmented Hamiltonian of one stage at the module's current θ (value,
    differentiable in θ with ``create_graph``, and its parts ``H``, ``state_error``,
    ``costate_error``); ``l1`` maps id(parameter) → λ."""
    tap = stage.tap
    theta = layer_theta(tap.module)
    xs = [tap.x.detach().requires_grad_(True)]
    with torch.enable_grad():
        f = layer_function(tap.module, xs[0], theta)
        H = (tap.p_next.detach() * f).sum()
        for th in theta.values():
            lam = l1.get(id(th), 0.0)
            if lam:
                H = H - lam * th.abs().sum()
        gx = torch.autograd.grad(H, xs, create_graph=create_graph)
        state_err = (stage.x_next.detach() - f).square().sum()
        costate_err = sum((pi.detach() - gi).square().sum() for pi, gi in zip([stage.p_ref], gx))
        value = H - 0.5 * rho * state_err - 0.5 * rho * costate_err
    return value, {"H": H, "state_error": state_err, "costate_error": costate_err}


def augmented_sum(stages: Sequence[Stage], rho: torch.Tensor, l1: dict[int, float], *,
                  create_graph: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ over ``stages`` of :func:`augmented_value` (value and summed parts)."""
    value, parts = None, {}
    for st in stages:
        v, pt = augmented_value(st, rho, l1, create_graph=create_graph)
        value = v if value is None else value + v
        for k, x in pt.items():
            parts[k] = x if k not in parts else parts[k] + x
    return value, parts


Items = list[tuple[str, torch.Tensor, dict[str, Any]]]


def maximise(stages: Sequence[Stage], items: Items, first: Callable[[Items], None],
             ascend: Callable[[Items, dict[str, torch.Tensor]], None],
             project: Callable[[list[str]], None], *, method: str, steps: int,
             rho: torch.Tensor, l1: dict[int, float]) -> None:
    """``steps`` iterations of ``method`` ascending :func:`augmented_sum` over the parameters
    ``items`` ((name, parameter, group), in the optimizer's order), in place. ``first(items)``
    takes the first Adam step from M; ``ascend(items, grads)`` one Adam step (with Π_Θ) from
    the given ascent directions; ``project(names)`` is Π_Θ (after L-BFGS)."""
    if not items:
        return
    if method == "lbfgs":
        _lbfgs(stages, items, steps, rho, l1)
        project([n for n, _, _ in items])
        return
    first(items)
    params = [p for _, p, _ in items]
    for _ in range(steps - 1):
        with torch.enable_grad():
            value, _ = augmented_sum(stages, rho, l1)
            gs = torch.autograd.grad(value, params, allow_unused=True)
        ascend(items, {n: (g if g is not None else torch.zeros_like(p))
                       for (n, p, _), g in zip(items, gs)})


def _lbfgs(stages: Sequence[Stage], items: Items, steps: int, rho: torch.Tensor,
           l1: dict[int, float]) -> None:
    """``torch.optim.LBFGS`` (ocdl's settings: ``max_iter`` = steps, history min(10, steps)) on
    −objective, one per param group with its ``lr``; every ``.grad`` is as it was after."""
    saved = {id(p): p.grad for _, p, _ in items}
    by_group: dict[int, list[torch.Tensor]] = {}
    lrs: dict[int, float] = {}
    for _, p, g in items:
        by_group.setdefault(id(g), []).append(p)
        lrs[id(g)] = float(g["lr"])
    try:
        for key, params in by_group.items():
            opt = torch.optim.LBFGS(params, lr=lrs[key], max_iter=steps,
                                    history_size=min(10, max(steps, 1)))

            def closure(params: list[torch.Tensor] = params) -> torch.Tensor:
                with torch.enable_grad():  # .grad of these parameters only, not of the others
                    loss = -augmented_sum(stages, rho, l1)[0]
                    gs = torch.autograd.grad(loss, params, allow_unused=True)
                for p, g in zip(params, gs):
                    p.grad = g if g is not None else torch.zeros_like(p)
                return loss

            with torch.enable_grad():
                opt.step(closure)
    finally:
        for _, p, _ in items:
            p.grad = saved[id(p)]
