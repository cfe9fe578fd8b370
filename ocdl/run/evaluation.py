"""A trained network read back from its run folder, and evaluated: ``ocdl evaluate``.

:func:`load_trained` rebuilds the system x_{t+1} = f_t(x_t, θ_t) of a run folder (the spec
stored in its ``config.yaml``) with the controls θ and BatchNorm running statistics of one of
its files: ``controls.pt`` (the final ones, written when the run ended), ``best.pt`` (the best
evaluated epoch) or ``last.pt`` (the latest checkpoint, also of a stopped run).

:func:`recalibrate_batchnorm` recomputes every BatchNorm's running statistics from the clean
(not augmented) training images with the controls held fixed. During training they are an
exponential average (momentum 0.1: about the last 20 batches) of the statistics of augmented
batches, taken while θ was still changing; recomputed, they are the plain average over all
training batches, μ = Σ_k S_k μ_k / N and σ² = Σ_k S_k σ²_k / N over batches k of S_k samples, of
the per-batch mean and unbiased variance that the running statistics track (the estimate of
``torch.optim.swa_utils.update_bn``, weighted by batch size).
Nothing in the run folder is changed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError, OcdlError
from .checkpoint import load_checkpoint, read_saved
from .device import AMP_DTYPES, resolve_device
from .folder import CONFIG, read_config
from .metrics import StageCount, count_fractions, discrete_counts, evaluate

#: which controls: the file of the run folder that holds them
CONTROL_FILES = {"final": "controls.pt", "best": "best.pt", "last": "last.pt"}
SPLITS = ("test", "valid", "train")


@dataclass
class Evaluation:
    """What ``ocdl evaluate`` measured: the mean terminal loss and the accuracy on ``split``
    with the stored running statistics, and with ``recalibrate_bn`` also after recomputing
    them on ``recalibrated_on`` clean training images (``recalibrated``: loss, acc, n).
    For discrete controls also the non-zero fraction, the fraction of dead output units (rows
    θ[u, ...] all zero; ``None`` without discrete weights of two or more dimensions) and both
    per stage (``stages``: stage → nonzero, size, dead, units, as counted by
    :func:`ocdl.run.metrics.discrete_counts`)."""

    run_dir: Path
    controls: str
    split: str
    n: int
    loss: float | None
    acc: float | None
    nonzero: float | None
    batchnorm: bool = False
    recalibrated: dict[str, Any] | None = None
    recalibrated_on: int = 0
    dead: float | None = None
    stages: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        def acc(r: dict[str, Any]) -> str:
            a = "" if r.get("acc") is None else f"accuracy {100 * r['acc']:.2f} %, "
            return f"{a}loss {r['loss']:.6g}"
        stored = ", stored BatchNorm statistics" if self.batchnorm else ""
        lines = [f"  run            {self.run_dir} ({self.controls} controls)",
                 f"  {self.split:<14} {acc({'acc': self.acc, 'loss': self.loss})} "
                 f"({self.n} sample{'s' if self.n != 1 else ''}{stored})"]
        if self.nonzero is not None:
            lines.append(f"  non-zero       {100 * self.nonzero:.2f} % of the discrete controls")
        if self.dead is not None:
            dead = [f"{k} {v['dead']}/{v['units']}" for k, v in self.stages.items() if v["dead"]]
            units = sum(v["units"] for v in self.stages.values())
            lines.append(f"  dead units     {100 * self.dead:.2f} % of {units} output units "
                         "(rows all zero)" + (": " + ", ".join(dead) if dead else ""))
        if self.recalibrated is not None:
            lines.append(f"  {self.split:<14} {acc(self.recalibrated)} (BatchNorm statistics "
                         f"recomputed on {self.recalibrated_on} clean training samples)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "run_dir": str(self.run_dir)}


def _controls_file(run_dir: Path, controls: str) -> tuple[str, Path]:
    if controls == "auto":
        controls = "final" if (run_dir / CONTROL_FILES["final"]).is_file() else "last"
    if controls not in CONTROL_FILES:
        raise ConfigError(f"controls must be one of auto, {', '.join(CONTROL_FILES)}; got "
                          f"'{controls}'")
    path = run_dir / CONTROL_FILES[controls]
    if not path.is_file():
        why = {"final": "the run has not finished (it writes controls.pt at its end); use "
                        "--controls last for its latest checkpoint",
               "best": "no epoch was evaluated yet",
               "last": "no checkpoint was written yet"}[controls]
        raise ConfigError(f"{path}: no such file: {why}")
    return controls, path


def _read_state(path: Path, controls: str, device: torch.device) -> dict[str, Any]:
    """The system state (controls and buffers) in ``path``: ``controls.pt`` holds it alone,
    the checkpoints hold it under ``system``."""
    if controls != "final":
        return load_checkpoint(path, map_location=device)["system"]
    state = read_saved(path, device, "controls file")
    if not isinstance(state, dict) or "theta" not in state:
        raise CheckpointError(f"{path} does not hold a network's controls (written by ocdl "
                              "solve at the end of a run)")
    return state


def load_trained(run_dir: str | Path, controls: str = "auto", device: str | None = None
                 ) -> tuple[Any, Any, str]:
    """The system of the run in ``run_dir`` with the controls and running statistics of
    ``controls`` (``auto``: ``final`` if the run finished, else ``last``), its data feeders
    (the same splits, without augmentation), and the name of the controls used. Runs on
    ``device`` (default ``auto``) with the run's memory layout and autocast."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml there); give a folder "
                          "written by ocdl solve")
    controls, path = _controls_file(run_dir, controls)
    config = read_config(run_dir / CONFIG)
    spec = config.spec().for_evaluation()
    run = config["run"]
    dev = resolve_device(device or "auto")
    seed = run.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{config.path}:{config.lines.get('run.seed', '?')}: run.seed must be "
                          f"a non-negative integer, got {str(seed)[:40]!r}")
    system = spec.compile(device=dev, seed=seed)
    try:
        system.load_state_dict(_read_state(path, controls, dev))
    except CheckpointError:
        raise
    except OcdlError as e:
        raise CheckpointError(f"{path}: {e}") from None
    system.channels_last = bool(run.get("channels_last", False))
    if system.autocast_refusal is None:
        system.autocast = AMP_DTYPES.get(str(run.get("amp", "off")))
    return system, spec.feeders(system, dev), controls


def batchnorm_stages(system: Any) -> list[Any]:
    """The stages (inner stages of residual blocks included) that keep running statistics."""
    return [st for st in system.all_stages()
            if {"running_mean", "running_var"} <= set(st.buffers)]


def recalibrate_batchnorm(system: Any, feeder: Any) -> int:
    """Recompute the running mean and variance of every BatchNorm stage of ``system`` as the
    average over the batches of ``feeder`` (one pass, training mode, no autograd, θ fixed) of
    the per-batch statistics that the running ones track (mean, unbiased variance), weighted by
    batch size; returns the number of samples used (0, and nothing changed, when the system has no
    BatchNorm). A last batch of one sample is left out (it has no variance).

    Each batch's statistics are read back from the running buffers: set to zero before the
    pass, a batch leaves m·μ_k and m·σ²_k in them (m the stage's momentum)."""
    stages = batchnorm_stages(system)
    if not stages:
        return 0
    for st in stages:
        if not st.params.get("momentum"):
            raise ConfigError(f"stage '{st.name}': batchnorm momentum is 0, so its running "
                              "statistics are fixed by design; nothing to recalibrate")
    sums = {st.name: [torch.zeros_like(st.buffers["running_mean"]),
                      torch.zeros_like(st.buffers["running_var"])] for st in stages}
    n = 0
    with torch.no_grad():
        for x, _ in feeder.epoch(0):
            b = int(x.shape[0])
            if b < 2:
                continue
            for st in stages:
                st.buffers["running_mean"].zero_()
                st.buffers["running_var"].zero_()
            system.forward(x, train=True, update_stats=True)
            for st in stages:
                w = b / float(st.params["momentum"])
                sums[st.name][0].add_(st.buffers["running_mean"], alpha=w)
                sums[st.name][1].add_(st.buffers["running_var"], alpha=w)
            n += b
    if n == 0:
        raise ConfigError("the training split has no batch of two or more samples to recompute "
                          "the BatchNorm statistics from")
    for st in stages:
        st.buffers["running_mean"].copy_(sums[st.name][0] / n)
        st.buffers["running_var"].copy_(sums[st.name][1] / n)
    return n


def score(model: Any, system: Any, feeder: Any, path: str | Path, used: str,
          split: str) -> Evaluation:
    """The :class:`Evaluation` of ``model`` (a System, or an exported file's artifact: anything
    :func:`ocdl.run.metrics.evaluate` runs) on ``feeder``; the non-zero and dead-unit counts
    and the BatchNorm flag come from the compiled ``system`` behind it."""
    first = evaluate(model, feeder, 0) or {"loss": None, "acc": None, "n": 0}
    counts: dict[str, StageCount] = {}
    nonzero = dead = None
    if any(c.cset.discrete for c in system.controls):
        counts = discrete_counts(system)
        fractions = count_fractions(counts)
        nonzero, dead = fractions["nonzero"], fractions.get("dead")
    return Evaluation(Path(path), used, split, int(first["n"]), first["loss"], first["acc"],
                      nonzero, batchnorm=bool(batchnorm_stages(system)), dead=dead,
                      stages={k: dataclasses.asdict(v) for k, v in counts.items()})


def evaluate_run(run_dir: str | Path, *, controls: str = "auto", split: str = "test",
                 device: str | None = None, recalibrate_bn: bool = False) -> Evaluation:
    """Evaluate the run in ``run_dir`` on ``split`` (``test``, ``valid`` or ``train``; never
    augmented) with its stored running statistics and, with ``recalibrate_bn``, again after
    :func:`recalibrate_batchnorm` on the clean training split. Reads the run folder only."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got '{split}'")
    system, feeders, used = load_trained(run_dir, controls, device)
    feeder = getattr(feeders, split)
    if feeder is None or len(feeder) == 0:
        raise ConfigError(f"the run has no {split} split (see data.split in its config.yaml); "
                          "evaluate on another one with --split")
    result = score(system, system, feeder, run_dir, used, split)
    if recalibrate_bn:
        if not result.batchnorm:
            raise ConfigError("the model has no batchnorm stage: there are no running "
                              "statistics to recompute; leave out --recalibrate-bn")
        result.recalibrated_on = recalibrate_batchnorm(system, feeders.train)
        result.recalibrated = evaluate(system, feeder, 0)
    return result
