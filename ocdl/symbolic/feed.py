"""Feeding an equation-defined control problem to the run loop (its spec's ``feeders``).

Such a problem has no dataset: its samples are its initial states x_{s,0} (``states:`` of the
``system:`` block), and every iteration works on all of them (the full batch; labels are unused).
An epoch is one iteration; there is no valid split, and "test" evaluates the same initial states
(its loss is the mean terminal cost; accuracy does not apply and is not reported).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class FixedBatch:
    """A feeder of one fixed batch: ``len`` 1, ``epoch(e, start_batch)`` yields it once."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return 1

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if start_batch == 0:
            yield self.x, self.y


@dataclass
class ProblemFeeders:
    """``train`` and ``test`` feeders over a problem's initial states; no valid split."""

    train: FixedBatch
    test: FixedBatch
    valid: None = None
    num_classes: int = 0


def fixed_batch_feeders(system) -> ProblemFeeders:
    """Feeders for an :class:`ocdl.symbolic.system.EquationSystem` (its ``batch()``)."""
    x0, y = system.batch()
    batch = FixedBatch(x0, y)
    return ProblemFeeders(train=batch, test=batch)
