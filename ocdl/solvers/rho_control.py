"""The error control of E-MSA: ρ, the weight of the feasibility errors, fixed or adapted
(Li, Chen, Tai & E, JMLR 2018; DESIGN.md §1, "error-controlled").

E-MSA maximises Σ_s [H_t − ρ/2 ‖x_{s,t+1} − f_t(x_{s,t}, θ)‖² − ρ/2 ‖p_{s,t} − ∇_x H_t‖²]. On
finite sets ρ is relative (ρ_k = ρ·max{|M̄_ij| : sign(M̄_ij) ≠ θ_ij}, per layer); on real controls
it is absolute, ``rho_real`` (default: ``rho``; p carries the 1/S of J while the feasibility
errors are sums over samples and state entries, so useful values are small).

With ``adaptive: true``, after the step θ^k → φ is computed on a batch, the solver evaluates on
the same batch the actual decrease ``actual = J(θ^k) − J(φ)`` (J with its l1 costs) and the one
the error estimate predicts, ``predicted = ΔH − (ρ/2)(E_x + E_p)``, with ΔH = Σ_t [H_t(φ) −
H_t(θ^k)] and E_x, E_p the state and costate feasibility errors at the old x, p. Then, on the
device (no host sync):

* **reject** when ``actual < accept_ratio · max(predicted, 0)`` — J rose, or fell by less than the
  fraction ``accept_ratio`` of a positive prediction: θ is restored to θ^k and ρ ← ρ·``up``;
* **accept** otherwise; if moreover ``actual ≥ predicted`` (the estimate held: the step was
  safe at this ρ), ρ ← ρ·``down``; else ρ is kept.

ρ stays within [``min``, ``max``]; the absolute ρ of the real controls moves by the same factor.
ρ lives in the state as 0-d tensors (``rho``, ``rho_real``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..system import System
from .settings import Part, Require


class RhoControl(Part):
    """Settings ``rho``, ``rho_real``, ``adaptive``, ``up``, ``down``, ``min``, ``max``,
    ``accept_ratio``."""

    DEFAULTS = {"rho": 0.5, "rho_real": None, "adaptive": False, "up": 2.0, "down": 0.9,
                "min": 1e-8, "max": 1e8, "accept_ratio": 0.1}
    DOCS = {"rho": "ρ of E-MSA: relative to the largest disagreeing |M̄| on finite sets, "
                   "absolute on real controls",
            "rho_real": "absolute ρ of the augmented Hamiltonian on real controls (null: rho)",
            "adaptive": "raise ρ on a rejected step, lower it on a safe one",
            "up": "the adaptive ρ's factor after a rejected step",
            "down": "the adaptive ρ's factor after a safe step",
            "min": "the adaptive ρ's lower bound",
            "max": "the adaptive ρ's upper bound",
            "accept_ratio": "a step is accepted when J decreases by at least this fraction of "
                            "the predicted decrease"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        require(s["rho"] >= 0, "rho", "must be ≥ 0")
        r = s["rho_real"]
        require(r is None or (isinstance(r, (int, float)) and r >= 0), "rho_real",
                f"must be a number ≥ 0 (or null: use {require.name('rho')})")
        require(s["up"] >= 1, "up", "must be ≥ 1")
        require(0 < s["down"] <= 1, "down", "must be in (0, 1]")
        require(0 < s["min"] <= s["max"], "min", f"must be in (0, {require.name('max')}]")
        require(0 <= s["accept_ratio"] <= 1, "accept_ratio", "must be in [0, 1]")

    def __init__(self, s: Mapping[str, Any]):
        self.s = dict(s)
        self.adaptive = bool(s["adaptive"])

    def init_state(self, system: System) -> dict[str, torch.Tensor]:
        """``rho`` and ``rho_real`` as 0-d tensors on the system's device."""
        s = self.s
        return {"rho": torch.tensor(s["rho"], device=system.device, dtype=system.dtype),
                "rho_real": torch.tensor(s["rho"] if s["rho_real"] is None else s["rho_real"],
                                         device=system.device, dtype=system.dtype)}

    @staticmethod
    def predicted(dH: torch.Tensor, rho: torch.Tensor, state_error: torch.Tensor,
                  costate_error: torch.Tensor) -> torch.Tensor:
        """The decrease of J the error estimate predicts: ΔH − (ρ/2)(E_x + E_p)."""
        return dH - 0.5 * rho * (state_error + costate_error)

    def accept(self, actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        """Whether the step is accepted: actual ≥ accept_ratio · max(predicted, 0) (0-d bool)."""
        return actual >= self.s["accept_ratio"] * predicted.clamp_min(0)

    def adapt_(self, state: dict[str, Any], accept: torch.Tensor, actual: torch.Tensor,
               predicted: torch.Tensor, rho_real: torch.Tensor | None = None) -> None:
        """ρ ← ρ·up on a rejected step, ρ·down on a safe one (actual ≥ predicted), clipped to
        [min, max]; with ``rho_real`` (the absolute ρ used on real controls) that one moves by
        the same factor."""
        s, rho = self.s, state["rho"]
        safe = accept & (actual >= predicted)
        new_rho = torch.where(accept, torch.where(safe, rho * s["down"], rho),
                              rho * s["up"]).clamp(s["min"], s["max"])
        state["rho"] = new_rho
        if rho_real is not None:
            state["rho_real"] = (rho_real * new_rho / rho).clamp(s["min"], s["max"])
