"""Basic MSA as a ``torch.optim.Optimizer`` (Li, Chen, Tai & E, JMLR 2018, Algorithm 1;
DESIGN.md §1): θ_t ← argmax_{θ ∈ Θ_t} Σ_s H_t(x_{s,t}, p_{s,t+1}, θ) for every parameter at once,
from M = −∇J = −``.grad``.

* **finite sets**: the closed-form argmax M l − λ|l| over the set's levels, ρ = 0, ties keeping
  θ (:class:`ocdl.solvers.hamiltonian_argmax.FiniteSetArgmax` with ``ties_keep``), λ the group's
  ``l1``;
* **real and box sets**: one ascent step on Σ_t H_t, θ ← Π_Θ(θ + lr (M − λ sign θ))
  (:func:`ocdl.solvers.inner_maximisation.maximise`, method ``gd``), which is exactly gradient
  descent θ ← θ − lr ∇J. More inner steps re-evaluate H_t on the stored states, which the solver
  ``msa`` on a compiled System does and an optimizer cannot.

Basic MSA has no error control and often diverges on finite sets (every θ jumps to sign(M));
:class:`ocdl.optim.EMSA` is the remedy.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError
from ..solvers.first_order import ascent_direction
from ..solvers.hamiltonian_argmax import FiniteSetArgmax
from ..solvers.inner_maximisation import maximise
from .base import ControlOptimizer


def _no_objective() -> torch.Tensor:
    raise SolverError("ocdl.optim.MSA takes one ascent step along M; it has no Hamiltonian to "
                      "re-evaluate")


class MSA(ControlOptimizer):
    """Basic MSA on a module's parameters (see the module docstring)."""

    supports = ("real", "box", "binary", "ternary", "levels")

    def __init__(self, params: Iterable[Any], lr: float = 0.01, *, control: ControlSet = Real(),
                 l1: float = 0.0, put_in: str = "quantize", seed: int = 0):
        if not lr > 0:
            raise SolverError(f"{self.title()}: lr must be > 0, got {lr!r}")
        super().__init__(params, {"lr": lr, "control": control, "l1": l1}, put_in=put_in,
                         seed=seed)
        self._build_argmax()

    def _build_argmax(self) -> None:
        disc = self._view.names(True)
        self._argmax = FiniteSetArgmax(self._view, disc, ties_keep=True) if disc else None

    def _groups_changed(self) -> None:
        self._build_argmax()

    def _real_step(self, items, M) -> None:
        """θ ← Π_Θ(θ + lr (M − λ sign θ)) per group: one gd step of the inner maximiser on H."""
        by_group: dict[int, tuple[dict[str, Any], list[str]]] = {}
        for n, _, g in items:
            by_group.setdefault(id(g), (g, []))[1].append(n)
        for g, names in by_group.values():
            maximise(self._view, names, _no_objective, method="gd", steps=1, lr=float(g["lr"]),
                     first=ascent_direction(self._view, M, names))

    def _discrete_step(self, items, M) -> dict[str, torch.Tensor]:
        """θ ← argmax_l M l − λ|l| (ρ = 0, ties keep θ)."""
        view = self._view
        zero = torch.zeros((), device=view.device, dtype=view.dtype)
        metrics, dH = self._argmax.step(view, M, None, 0.0, zero)
        metrics.pop("rho_k/max", None)
        metrics.pop("rho_k/mean", None)
        metrics["dH"] = dH
        return metrics
