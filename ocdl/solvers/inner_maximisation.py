"""Inner maximisation for real and box controls: a few steps on an objective of θ with x, p fixed.

MSA maximises Σ_t Σ_s H_t(x_t, p_{t+1}, θ_t); E-MSA the augmented Hamiltonian
(:mod:`ocdl.solvers.hamiltonian`); all stages at once, their problems being separable. The part
:class:`InnerMaximisation` holds the settings ``method``, ``steps`` and ``lr``. Methods, each
followed by the projection Π_Θ onto box sets:

* ``gd``: θ ← Π(θ + lr ∇_θ objective), ``steps`` times. With one step and the objective Σ H,
  ∇_θ Σ_t H_t = M − λ sign θ = −∇J, so this is exactly gradient descent θ ← θ − lr ∇J;
* ``adam``: Adam ascent (torch's fused kernel, ``maximize=True``), moments in ``adam_state``;
* ``lbfgs``: ``torch.optim.LBFGS`` on −objective for ``steps`` iterations (projected once, at
  the end).

``first`` may give the gradient at the current θ when the caller already has it (the reverse pass
gives M = Σ_s ∇_θ H, so the first step costs no extra autograd call).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..system import System
from .hamiltonian import ascent_grads, params_of
from .first_order import adam_init, adam_step, project_
from .settings import Part, Require, positive

METHODS = ("gd", "adam", "lbfgs")


class InnerMaximisation(Part):
    """Settings ``method`` (gd | adam | lbfgs), ``steps`` (≥ 1) and ``lr`` (> 0)."""

    DEFAULTS = {"method": "adam", "steps": 5, "lr": 1e-3}
    DOCS = {"method": "the maximiser of H (E-MSA: of the augmented H) on real controls: gd, "
                      "adam or lbfgs",
            "steps": "the inner maximiser's steps per iteration",
            "lr": "the inner maximiser's step size"}
    CHOICES = {"method": METHODS}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        positive(s, require, "lr")
        require(s["steps"] >= 1, "steps", "must be ≥ 1")


def maximise(system: System, names: Sequence[str], objective: Callable[[], torch.Tensor], *,
             method: str, steps: int, lr: float, first: dict[str, torch.Tensor] | None = None,
             adam_state: dict[str, Any] | None = None, betas: tuple[float, float] = (0.9, 0.999),
             eps: float = 1e-8) -> None:
    """Run ``steps`` iterations of ``method`` ascending ``objective()`` over the controls
    ``names`` of ``system`` (in place)."""
    names = list(names)
    if not names or steps <= 0:
        return
    if method == "lbfgs":
        _lbfgs(system, names, objective, steps, lr)
        project_(system, names)
        return
    if method == "adam" and adam_state is None:
        adam_state = adam_init({n: system.theta[n] for n in names})
    for k in range(steps):
        if k == 0 and first is not None:
            g = first
        else:
            with torch.enable_grad():
                g = ascent_grads(objective(), system, names)
        if method == "gd":
            with torch.no_grad():
                torch._foreach_add_([system.theta[n] for n in names], [g[n] for n in names],
                                    alpha=lr)
        elif method == "adam":
            adam_step({n: system.theta[n] for n in names}, g, adam_state, lr=lr, betas=betas,
                      eps=eps, maximize=True)
        else:  # pragma: no cover - guarded by the solvers' settings
            raise ValueError(method)
        project_(system, names)


def _lbfgs(system: System, names: list[str], objective: Callable[[], torch.Tensor], steps: int,
           lr: float) -> None:
    params = params_of(system, names)
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=steps, history_size=min(10, max(steps, 1)))

    def closure() -> torch.Tensor:  # a data-parallel run: the ranks' shares summed
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = -objective()
            loss.backward()
        loss = loss.detach()
        system.sum_over_ranks([loss] + [p.grad for p in params if p.grad is not None],
                              "an L-BFGS step's objective and gradient")
        return loss

    opt.step(closure)
    for p in system.theta.values():  # backward also reached other controls of these stages
        p.grad = None
