"""Closed-form Hamiltonian maximisation over finite control sets (DESIGN.md §1), as pure,
elementwise tensor functions.

For a stage whose map f_t is linear in its weight (dense, conv), Σ_s H_t is linear in θ with
gradient M, so maximising Σ_s H_t − λ‖θ‖₁ − penalty decouples into one scalar problem per entry.
With M̄ the running average of M (E-MSA) or M itself (basic MSA):

* running average:  M̄ ← α M̄ + (1−α) M
* ρ_k = ρ · max{ |M̄_ij| : sign(M̄_ij) ≠ θ_ij }   with sign(0) = +1 and max ∅ = 0.
  For a general level set {l_1 < … < l_K} "sign(M̄) ≠ θ" reads "θ is not the level M̄ pulls
  towards", θ ≠ l_K where M̄ ≥ 0 and θ ≠ l_1 where M̄ < 0; for sets with extremes ±1 (binary,
  ternary, symmetric k-bit sets) the two readings agree.
* binary {−1,+1}:  θ_ij ← sign(M̄_ij) where |M̄_ij| > ρ_k, else unchanged
  (= argmax_θ M̄θ − (ρ_k/2)(θ−θ_ij)², ties keep θ_ij).
* ternary {−1,0,+1}: θ ← +1 if M̄ > ρ_k(1−2θ) + λ; −1 if M̄ < −ρ_k(1+2θ) − λ; else 0
  (= argmax_θ M̄θ − λ|θ| − ρ_k(θ−θ_ij)²). Equivalently, with d = M̄ + 2ρ_kθ and τ = ρ_k + λ:
  θ ← +1 if d > τ, −1 if d < −τ, else 0. At an exact tie this rule (the paper's) returns 0,
  where :func:`levels_argmax` would keep θ; ties have probability zero for real-valued M̄.
* any finite set: θ ← argmax_{l} M̄ l − λ|l| − c (l − θ_ij)², ties keep θ_ij
  (c = ρ_k matches the ternary form, c = ρ_k/2 the binary form, c = 0 basic MSA).

These are the readable reference forms; :mod:`.batched` runs the same updates batched over
layers with preallocated buffers, and the tests check both against brute force.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ...controls import ControlSet, Levels

Scalar = float | torch.Tensor


def sign0(m: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1."""
    return torch.where(m >= 0, 1.0, -1.0).to(m.dtype)


def running_average_(mbar: torch.Tensor, m: torch.Tensor, alpha: float) -> torch.Tensor:
    """M̄ ← α M̄ + (1−α) M, in place; returns ``mbar``."""
    return mbar.lerp_(m, 1.0 - alpha)


def pull_level(mbar: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
    """The level M̄ pulls towards: l_K where M̄ ≥ 0, l_1 where M̄ < 0 (sign(M̄) for ±1 sets)."""
    lo, hi = float(levels[0]), float(levels[-1])
    return torch.where(mbar >= 0, hi, lo).to(mbar.dtype)


def rho_k(mbar: torch.Tensor, theta: torch.Tensor, rho: Scalar,
          levels: Sequence[float] = (-1.0, 1.0)) -> torch.Tensor:
    """ρ_k = ρ · max{ |M̄_ij| : θ_ij ≠ pull_level(M̄_ij) } (0 when every entry agrees), 0-d."""
    disagree = theta != pull_level(mbar, levels)
    mx = torch.where(disagree, mbar.abs(), torch.zeros((), dtype=mbar.dtype,
                                                       device=mbar.device)).amax()
    return rho * mx


def binary_update(mbar: torch.Tensor, theta: torch.Tensor, rk: Scalar) -> torch.Tensor:
    """θ ← sign(M̄) where |M̄| > ρ_k, else θ (binary closed form; returns a new tensor)."""
    return torch.where(mbar.abs() > rk, sign0(mbar), theta)


def ternary_update(mbar: torch.Tensor, theta: torch.Tensor, rk: Scalar, lam: float = 0.0
                   ) -> torch.Tensor:
    """θ ← +1 if M̄ > ρ_k(1−2θ) + λ; −1 if M̄ < −ρ_k(1+2θ) − λ; else 0 (new tensor)."""
    up = mbar > rk * (1 - 2 * theta) + lam
    down = mbar < -rk * (1 + 2 * theta) - lam
    return up.to(theta.dtype) - down.to(theta.dtype)


def levels_argmax(mbar: torch.Tensor, theta: torch.Tensor, levels: Sequence[float],
                  penalty: Scalar = 0.0, lam: Scalar = 0.0) -> torch.Tensor:
    """θ ← argmax_{l ∈ levels} M̄ l − λ|l| − c (l − θ)², elementwise; ties keep θ (new tensor).

    Starts from the value of the current θ and moves to a level only on strict improvement, so a
    tie with the current level keeps it (between two other levels the lower one wins). One pass
    per level: K elementwise passes, no loop over entries.
    """
    best = theta.clone()
    best_val = mbar * theta - lam * theta.abs()
    for lv in levels:
        val = mbar * lv - lam * abs(lv) - penalty * (lv - theta).square()
        better = val > best_val
        best = torch.where(better, torch.full_like(theta, lv), best)
        best_val = torch.where(better, val, best_val)
    return best


def closed_form(cset: ControlSet, mbar: torch.Tensor, theta: torch.Tensor, rk: Scalar,
                lam: float = 0.0) -> torch.Tensor:
    """The E-MSA closed form for ``cset``: binary and ternary as in DESIGN.md §1, any other
    finite set by :func:`levels_argmax` with penalty ρ_k (the ternary convention)."""
    if not isinstance(cset, Levels):
        raise TypeError(f"no closed form for a {cset.describe()} set")
    if cset.kind == "binary":
        return binary_update(mbar, theta, rk)
    if cset.kind == "ternary":
        return ternary_update(mbar, theta, rk, lam)
    return levels_argmax(mbar, theta, cset.values, rk, lam)

