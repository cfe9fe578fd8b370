"""The running average M̄ of M = Σ_s ∇_θ H that E-MSA's closed forms maximise against
(Li & Hao, ICML 2018; DESIGN.md §1).

    M̄ ← α M̄ + (1−α) M,   M̄ initialised U(±``init``)  (the paper: α₀ = 0.999, init 1e-6)

1 − α follows a schedule (:mod:`ocdl.solvers.schedules`): × ``decay`` = d after every epoch
(the paper: 0.95 on MNIST/SVHN, 0.98 on CIFAR-10), or with ``end`` = r set (1 − α₀)·r^π after an
epoch that ends the fraction π of the run, reaching r(1 − α₀) at its end whatever its length.
With ``batch_size`` = B₀ set, α is the rate per B₀ samples: a step on a batch of S samples uses
α^(S/B₀), so M̄ averages over the same number of samples whatever the batch size (the sparsity
target's gain is scaled by the same share S/B₀). α lives in the state (``alpha``), M̄ too
(``mbar``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..system import System
from .schedules import exponential
from .settings import Part, Require, fraction_or_null


class RunningAverage(Part):
    """Settings ``alpha`` (α₀), ``decay`` (d), ``end`` (r), ``batch_size`` (B₀) and ``init``."""

    DEFAULTS = {"alpha": 0.999, "decay": 0.95, "end": None, "batch_size": None, "init": 1e-6}
    DOCS = {"alpha": "M̄ ← α M̄ + (1−α) M, the running average of M on finite sets",
            "decay": "1 − α ← decay·(1 − α) after each epoch",
            "end": "if set, 1 − α = (1 − α₀)·end^π instead, π the fraction of the run done",
            "batch_size": "α and the sparsity rate are rates per this many samples (a batch of "
                          "S averages with α^(S/batch_size)); null: per step",
            "init": "M̄ starts U(±init)"}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        require(0 <= s["alpha"] < 1, "alpha", "must be in [0, 1)")
        require(0 < s["decay"] <= 1, "decay", "must be in (0, 1]")
        fraction_or_null(s, require, "end")
        b0 = s["batch_size"]
        require(b0 is None or (isinstance(b0, int) and not isinstance(b0, bool) and b0 >= 1),
                "batch_size", "must be a whole number of samples ≥ 1, e.g. 100, or null (α and "
                "nonzero_rate per step, whatever the batch size)")
        require(s["init"] >= 0, "init", "must be ≥ 0")

    def __init__(self, s: Mapping[str, Any], solver: str, end_key: str):
        self.alpha0, self.b0, self.init_scale = s["alpha"], s["batch_size"], s["init"]
        self.schedule = exponential(s["decay"], s["end"], solver, end_key)

    def init_mbar(self, system: System, names: Sequence[str], seed: int
                  ) -> dict[str, torch.Tensor]:
        """M̄ ~ U(±init) per control, drawn in float64 from a generator seeded with ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        mbar = {}
        for n in names:
            u = torch.rand(system.control[n].shape, generator=gen, dtype=torch.float64)
            mbar[n] = ((2 * u - 1) * self.init_scale).to(device=system.device,
                                                          dtype=system.dtype)
        return mbar

    def share(self, samples: int) -> float:
        """S/B₀ for a batch of S = ``samples`` (the global batch of a data-parallel run:
        :meth:`System.batch_samples`) with ``batch_size`` = B₀ set, else 1: the step then
        averages with α^(S/B₀) (at S = 4B₀, 1 − α = 0.001 becomes ≈ 0.004)."""
        return 1.0 if self.b0 is None else samples / self.b0

    @staticmethod
    def weight(state: Mapping[str, Any], per: float) -> float:
        """1 − α^per, the weight of M in this step's M̄ ← lerp(M̄, M, ·)."""
        return 1.0 - state["alpha"] ** per

    def after_epoch(self, state: dict[str, Any], progress: float | None) -> None:
        """1 − α ← d·(1 − α), or 1 − α = (1 − α₀)·r^π."""
        state["alpha"] = 1.0 - self.schedule.after_epoch(1.0 - state["alpha"], 1.0 - self.alpha0,
                                                         progress)
