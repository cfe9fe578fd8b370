"""TensorBoard scalars of a run (``--set run.tensorboard=true``): a callback
(:mod:`ocdl.run.events`) that writes event files under ``RUN/tensorboard/`` with
``torch.utils.tensorboard`` (the ``tensorboard`` package is an optional extra:
``pip install 'ocdl[tensorboard]'``).

Written: every numeric value of each epoch record under ``epoch/<key>`` at step = epoch (loss,
``valid_acc``/``test_acc`` in percent as ``ocdl solve`` prints them, ``nonzero`` and
``nonzero/<stage>``, ``flips``, ``rho``, ``alpha``, ``dH``, ``dead``, ``lambda_scale``, times), and
the per-iteration loss, J, ρ and flip rate under ``iter/<key>`` at step = iteration. Watch with
``tensorboard --logdir RUN/tensorboard`` (or a folder of runs).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import MissingPackageError
from .events import Event

FOLDER = "tensorboard"
ITERATION_KEYS = ("loss", "J", "rho", "flips", "dH")
PERCENT = ("valid_acc", "test_acc", "nonzero", "dead")
SKIP = ("type", "epoch", "iters", "iter", "batch")


def _numbers(record: dict[str, Any]):
    for k, v in record.items():
        if k in SKIP or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            yield k, v


class TensorBoardCallback:
    """Writes a run's scalars for TensorBoard into ``run_dir/tensorboard`` (a resumed run adds
    an event file beside the earlier ones; iterations an interrupted session ran past its last
    checkpoint appear twice there, as they were run twice)."""

    def __init__(self, run_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingPackageError("run.tensorboard=true needs the tensorboard package: "
                                      "pip install 'ocdl[tensorboard]' (or pip install "
                                      "tensorboard)") from None
        self.path = Path(run_dir) / FOLDER
        self.writer = SummaryWriter(str(self.path))

    def __call__(self, event: Event) -> None:
        if event.kind == "iterations":
            for r in event.records:
                for k, v in _numbers(r):
                    if k in ITERATION_KEYS:
                        self.writer.add_scalar(f"iter/{k}", v, r.get("iter", event.iteration))
        elif event.kind == "epoch_end":
            step = event.record.get("epoch", event.epoch)
            for k, v in _numbers(event.record):
                self.writer.add_scalar(f"epoch/{k}", 100 * v if k in PERCENT else v, step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
