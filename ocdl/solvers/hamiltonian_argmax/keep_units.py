"""The keep-units constraint of the ternary argmax: every output unit keeps a non-zero entry.

With ``keep_units`` every output unit u of a ternary weight (the row θ[u, ...] of a dense or
conv2d kernel) keeps a non-zero entry: the argmax of Σ M̄θ − λ|θ| − ρ_k(θ − θ_ij)² is taken over
such θ, which differs from the paper's only where a row would end all zero, and there sets the
entry of largest |M̄ + 2ρ_kθ| to its sign (:func:`keep_units_`). A dead unit followed by batchnorm
and ReLU outputs the constant relu(β); with β ≤ 0 no gradient reaches its weights or β again, so
it stays dead, a unit pruned for good that no l1 count sees. While a sparsity target's λ prunes,
dense layers can lose half their units so (``dead/<stage>`` in the epoch records counts them;
docs/RESULTS.md). With one non-zero entry, batchnorm normalises the unit's input to unit
variance, so it keeps passing the ReLU for part of each batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class UnitBest:
    """Per output unit u of d (rows d[u, ...] flattened), as (U, 1) tensors: the largest and
    the smallest entry (``hi``, ``lo``), and the index ``j`` of the entry of largest |d| with
    its sign ``sign`` (+1 where hi ≥ −lo)."""

    hi: torch.Tensor
    lo: torch.Tensor
    j: torch.Tensor
    sign: torch.Tensor


def unit_best(d: torch.Tensor) -> UnitBest:
    """:class:`UnitBest` of d: a max and a min reduction along each row, no |d| pass."""
    rows = d.flatten(1)
    hi, j_hi = rows.max(dim=1, keepdim=True)
    lo, j_lo = rows.min(dim=1, keepdim=True)
    up = hi >= lo.neg()
    return UnitBest(hi, lo, torch.where(up, j_hi, j_lo),
                    torch.where(up, 1.0, -1.0).to(d.dtype))


def keep_units_(theta_new: torch.Tensor, best: UnitBest, tau: torch.Tensor | float) -> None:
    """Revive the dead units of a ternary argmax θ_new = [d > τ] − [d < −τ] in place: a row
    θ_new[u, ...] that is all zero — max d_u ≤ τ and min d_u ≥ −τ, read from ``best``
    (:func:`unit_best` of the step's d) — gets sign(d_uj) at j = argmax |d_u·|.

    This is the exact argmax of Σ M̄θ − λ|θ| − ρ_k(θ − θ_old)² over the rows with a non-zero
    entry: the objective is a sum over entries, and moving entry i from 0 to s = ±1 changes it by
    s·d_i − τ (d = M̄ + 2ρ_kθ_old, τ = ρ_k + λ), so the best row with one non-zero entry instead
    of none loses the least, τ − |d_j|, at the largest |d_j|; a row the free argmax left
    non-zero is already optimal. Without a sync: two compares and a scatter-add into the rows
    (a dead row's entry j is 0)."""
    rows = theta_new.flatten(1)  # a view: the scratch is contiguous
    dead = (best.hi <= tau) & (best.lo >= -tau)
    rows.scatter_add_(1, best.j, best.sign * dead)
