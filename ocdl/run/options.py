"""The loop's options (not the model's, not the solver's): :class:`RunOptions`, validated by
:func:`run_options` from defaults, a base (a recorded run), ``run.<key>`` settings and the
command line's arguments."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .device import AMP_DTYPES, resolve_device

DEFAULT_EPOCHS = 10


@dataclass(frozen=True)
class RunOptions:
    """Options of the loop (not of the model, not of the solver).

    epochs: total number of epochs (a resumed run continues up to this number).
    seed: seeds the control initialisation, the global RNGs (torch, python, numpy) and the
      solver's own ``seed`` setting if it has one and it is not set explicitly; the data split
      and batch order follow ``data.seed``.
    device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available).
    log_every: iterations between host syncs of the per-iteration metrics (every iteration is
      logged; metrics stay on the device in between, so the loop never waits for the device
      on each step). NaN/inf in the loss is detected at these points and at epoch ends.
    checkpoint_every: iterations between mid-epoch checkpoints (0: only at epoch ends).
    eval_every: evaluate on the valid and test splits after every ``eval_every``-th epoch and
      after the last (1: every epoch). Epochs in between have no accuracies in their record and
      cannot become ``best.pt``; fewer evaluations leave more of a time budget for training.
    time_limit: seconds of wall time for the whole run (0: none). At each epoch's end the run
      estimates, from that epoch's training and the last evaluation's time, whether one more
      epoch and its evaluation would end within the limit; if not, this epoch is the last: it is
      evaluated (whatever ``eval_every`` says) and the run ends as completed, with a
      ``time_limit`` event in its log. Counts from the start of the run, earlier sessions of a
      resumed run included. The way to say "train for 10 minutes" and still get the final
      accuracy of the controls at the end.
    tf32: on CUDA, let matrix products and convolutions use TF32 tensor cores (10-bit mantissa
      inputs, float32 accumulation; several times faster on Ampere/Hopper). The sign-based
      closed forms of E-MSA only need M's signs and magnitudes to a few digits; set false for
      bit-for-bit float32 arithmetic. No effect on CPU.
    amp: ``off`` or ``bf16``: run the forward pass, and so the reverse pass that gives M, under
      ``torch.autocast`` in bfloat16 (matrix products and convolutions in bfloat16 with float32
      accumulation, their gradients w.r.t. the float32 controls in float32; the terminal cost in
      float32). Safe where a step only needs M = −∇_θ J: the closed forms of E-MSA and MSA on
      finite sets (only M̄'s signs and sizes matter), Adam/SGD, BinaryConnect, TWN, Bop.
      Refused for solvers that evaluate Hamiltonians or feasibility errors (E-MSA's augmented
      inner steps or ``adaptive_rho``, MSA's inner steps on real controls): differences of
      near-equal states are lost in bfloat16. Works on CPU and CUDA; pays off on tensor-core
      GPUs.
    channels_last: keep image batches (N, C, H, W) in channels-last strides through the network
      (the layout of cuDNN's tensor-core convolutions, which otherwise transposes); the
      controls and M keep their own layout. Same numbers up to float reassociation.
    cudnn_benchmark: on CUDA, let cuDNN time its convolution algorithms for each new input shape
      once and keep the fastest (``torch.backends.cudnn.benchmark``); pays off for the fixed
      batch shapes of training. Set false for cuDNN's deterministic default choice. No effect
      on CPU.
    tensorboard: write TensorBoard scalars of the run into ``RUN/tensorboard``
      (:mod:`ocdl.run.tensorboard`; needs the ``tensorboard`` package). May be switched on
      when a run is resumed; it changes nothing in the training.
    sync_bn: in a data-parallel run (torchrun, ``ocdl solve --nproc``), normalise BatchNorm
      with the statistics of the global batch (its per-channel sums all-reduced,
      :mod:`ocdl.ops.sync_batchnorm`), so N processes × batch b reproduce one process × batch
      N·b up to float summation order; off: each process its own batch's statistics (cheaper,
      but not the single-process run). No effect in a single-process run.
    """

    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    checkpoint_every: int = 0
    eval_every: int = 1
    time_limit: float = 0.0
    tf32: bool = True
    cudnn_benchmark: bool = True
    amp: str = "off"
    channels_last: bool = False
    tensorboard: bool = False
    sync_bn: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunOptions))


def run_options(base: RunOptions | None = None, *, epochs: int | None = None,
                seed: int | None = None, device: str | None = None,
                settings: Mapping[str, Any] | None = None) -> RunOptions:
    """Loop options: defaults ← ``base`` ← ``run.`` settings ← explicit arguments; validated."""
    d = (base or RunOptions()).to_dict()
    d.update(settings or {})
    for k, v in (("epochs", epochs), ("seed", seed), ("device", device)):
        if v is not None:
            d[k] = v
    for k in ("epochs", "log_every", "eval_every"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{k} must be a positive integer, got {v!r}")
    for k in ("seed", "checkpoint_every"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{k} must be a non-negative integer, got {v!r}")
    v = d["time_limit"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ConfigError(f"time_limit must be a number of seconds ≥ 0 (0: none), got {v!r}")
    d["time_limit"] = float(v)
    if d["amp"] not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {d['amp']!r}")
    for k in ("tf32", "cudnn_benchmark", "channels_last", "tensorboard", "sync_bn"):
        if not isinstance(d[k], bool):
            raise ConfigError(f"{k} must be true or false, got {d[k]!r}")
    d["device"] = str(d["device"])
    resolve_device(d["device"])  # validate now, before anything is built
    return RunOptions(**d)
