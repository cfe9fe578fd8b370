"""Metrics: the JSONL log, device-side buffering of per-iteration metrics, and evaluation.

Solver metrics are 0-d tensors on the device. :class:`MetricBuffer` keeps them there and copies
them to the host in one transfer every ``log_every`` iterations (and at epoch ends and
checkpoints), so the loop never waits for the device on each step. It also keeps a running
``isfinite`` flag of the loss on the device, checked at each sync.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

LOSS_KEYS = ("loss", "J")  # the first present is the one checked for NaN/inf
TIME_KEYS = ("time", "epoch_time", "eval_time", "train_time")  # differ between identical runs


def _json_number(v: float) -> float | None:
    return v if math.isfinite(v) else None


class JsonlLog:
    """Append-only ``log.jsonl``; its byte size is stored in checkpoints so that a resumed run
    can cut what was written after the checkpoint it resumes from."""

    def __init__(self, path: str | Path, truncate_to: int | None = None):
        self.path = Path(path)
        if truncate_to is not None and self.path.exists() \
                and self.path.stat().st_size > truncate_to:
            with open(self.path, "r+b") as f:  # drop what was logged after the checkpoint
                f.truncate(truncate_to)
        self._f = open(self.path, "ab")

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
        self._f.write(data.encode("utf-8"))
        self._f.flush()

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    @property
    def offset(self) -> int:
        self._f.flush()
        return self._f.tell()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class NullLog:
    """The log of a data-parallel run's ranks other than 0 (:mod:`ocdl.run.distributed`):
    records go nowhere, rank 0 writes ``log.jsonl``."""

    offset = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        pass

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl``: the lines that are JSON objects (a torn last line, and
    any line damaged otherwise, is left out)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


@dataclass
class Pending:
    """One iteration's metrics: scalar tensors stacked into one device vector (a copy, so a
    solver may reuse its metric buffers) in the order of ``keys``."""

    epoch: int
    batch: int
    iteration: int
    keys: list[str]
    values: torch.Tensor | None
    host: dict[str, float] = field(default_factory=dict)  # metrics given as Python numbers


@dataclass
class SyncResult:
    """Host copy of the synced iterations: the records and, if the loss went NaN/inf, where."""

    records: list[dict[str, Any]]
    bad: dict[str, Any] | None = None


@dataclass
class MetricBuffer:
    """Per-iteration metrics kept on the device until :meth:`sync`."""

    device: torch.device
    pending: list[Pending] = field(default_factory=list)
    finite: torch.Tensor | None = None

    def __post_init__(self):
        self.finite = torch.ones((), dtype=torch.bool, device=self.device)

    def push(self, epoch: int, batch: int, iteration: int, metrics: Mapping[str, Any]) -> None:
        keys: list[str] = []
        vals: list[torch.Tensor] = []
        host: dict[str, float] = {}
        for k, v in metrics.items():
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    continue  # only scalars are logged
                v = v.detach().reshape(())
                if v.device != self.device:
                    v = v.to(self.device)
                keys.append(k)
                vals.append(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                host[k] = float(v)  # stays on the host: a copy to the device would sync
        stacked = None
        if vals:
            if len({v.dtype for v in vals}) > 1 or not vals[0].dtype.is_floating_point:
                vals = [v.to(torch.float64) for v in vals]
            stacked = torch.stack(vals)
        loss_key = next((k for k in LOSS_KEYS if k in keys or k in host), None)
        if loss_key in keys:
            self.finite.logical_and_(torch.isfinite(stacked[keys.index(loss_key)]))
        elif loss_key is not None and not math.isfinite(host[loss_key]):
            self.finite.fill_(False)
        self.pending.append(Pending(epoch, batch, iteration, keys, stacked, host))

    def __len__(self) -> int:
        return len(self.pending)

    def sync(self) -> SyncResult:
        """Copy the pending metrics to the host (one transfer) and return their log records."""
        if not self.pending:
            return SyncResult([])
        parts = [p.values.to(torch.float64) for p in self.pending if p.values is not None]
        parts.append(self.finite.to(torch.float64).reshape(1))
        host = torch.cat(parts).tolist()
        finite = bool(host[-1])
        records: list[dict[str, Any]] = []
        bad = None
        i = 0
        for p in self.pending:
            rec: dict[str, Any] = {"type": "iter", "epoch": p.epoch, "batch": p.batch,
                                   "iter": p.iteration}
            values = dict(zip(p.keys, host[i:i + len(p.keys)]))
            i += len(p.keys)
            values.update(p.host)
            loss_key = next((k for k in LOSS_KEYS if k in values), None)
            for k, v in values.items():
                rec[k] = _json_number(v)
                if bad is None and k == loss_key and not math.isfinite(v):
                    bad = {"epoch": p.epoch, "batch": p.batch, "iter": p.iteration, "key": k,
                           "value": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
            records.append(rec)
        if not finite and bad is None:  # pragma: no cover - the flag and the values disagree
            p = self.pending[-1]
            bad = {"epoch": p.epoch, "batch": p.batch, "iter": p.iteration, "key": "loss",
                   "value": "nan/inf"}
        self.pending.clear()
        return SyncResult(records, bad)


class EpochMeans:
    """Host-side means over an epoch of the synced per-iteration metrics."""

    def __init__(self, sums: dict[str, float] | None = None, counts: dict[str, int] | None = None):
        self.sums = dict(sums or {})
        self.counts = dict(counts or {})

    def add(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            for k, v in r.items():
                if k in ("type", "epoch", "batch", "iter") or v is None:
                    continue
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts.get(k)}

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}


# ---------------------------------------------------------------------- evaluation
def evaluate(system: Any, feeder: Any, epoch: int) -> dict[str, float] | None:
    """Mean terminal loss (1/N) Σ_s Φ(x_{s,T}, y_s) and accuracy (argmax of x_T; None where the
    labels are not classes, e.g. regression targets or a control problem) over a split,
    in evaluation mode (running BatchNorm statistics) without autograd; ``None`` if the split
    is empty. One host sync at the end. In a data-parallel run each rank scores its shard of
    the split and the sums are all-reduced (:mod:`ocdl.run.distributed`)."""
    if feeder is None or len(feeder) == 0:
        return None
    loss_sum = torch.zeros((), dtype=torch.float64, device=system.device)
    correct = torch.zeros((), dtype=torch.float64, device=system.device)
    n = 0
    classified = False  # class labels and class scores: accuracy applies
    with torch.no_grad():
        for x, y in _batches(feeder, epoch):
            out = system.predict(x)
            loss_sum += system.terminal(out, y).double().sum()
            if not y.dtype.is_floating_point and out.dim() == 2:
                correct += (out.argmax(dim=1) == y).sum()
                classified = True
            n += int(y.shape[0])
    dp = getattr(system, "data_parallel", None)
    if dp is not None:  # each rank scored its shard: Σ_r of the sums, the counts and the flag
        tot = dp.sum_(torch.stack([loss_sum, correct, loss_sum.new_tensor(float(n)),
                                   loss_sum.new_tensor(float(classified))]), "the evaluation")
        loss_sum, correct = tot[0], tot[1]
        n, classified = int(tot[2]), bool(tot[3] > 0)
    if n == 0:
        return None
    loss, corr = torch.stack([loss_sum, correct]).tolist()
    return {"loss": _json_number(loss / n), "acc": corr / n if classified else None, "n": n}


def _batches(feeder: Any, epoch: int) -> Iterator:
    return iter(feeder.epoch(epoch))


@dataclass
class StageCount:
    """Host counts of one stage's discrete controls: ``nonzero`` of ``size`` entries are
    non-zero, and ``dead`` of the ``units`` output units of its discrete weights of two or more
    dimensions are dead (``units`` 0 where it has none)."""

    nonzero: int = 0
    size: int = 0
    dead: int = 0
    units: int = 0


def discrete_counts(system: Any) -> dict[str, StageCount]:
    """Per stage (in the order of the controls): how many entries of the discrete controls
    are non-zero (all controls if none is discrete), and how many output units of each
    discrete weight of two or more dimensions whose set holds 0 are *dead*: units u whose row
    θ[u, ...] is all zero, whose output is then constant (after a batchnorm: β, whatever the
    input). Summed over the controls of a stage. One host sync."""
    controls = [c for c in system.controls if c.cset.discrete] or list(system.controls)
    if not controls:
        return {}
    rows = [c for c in controls if c.cset.discrete and 0.0 in c.cset.values
            and c.has_units]  # a set without 0 (binary) has no dead rows
    with torch.no_grad():
        counts = [torch.count_nonzero(system.theta[c.name]) for c in controls]
        counts += [(system.theta[c.name].flatten(1) == 0).all(dim=1).sum() for c in rows]
        counts = torch.stack(counts).tolist()
    per: dict[str, StageCount] = {}
    for c, k in zip(controls, counts):
        s = per.setdefault(c.stage, StageCount())
        s.nonzero += int(k)
        s.size += c.numel
    for c, k in zip(rows, counts[len(controls):]):
        s = per[c.stage]
        s.dead += int(k)
        s.units += c.shape[0]
    return per


def nonzero_by_stage(system: Any) -> dict[str, float]:
    """:func:`count_fractions` of :func:`discrete_counts` (one host sync)."""
    return count_fractions(discrete_counts(system))


def count_fractions(per: dict[str, StageCount]) -> dict[str, float]:
    """Fractions of the counts of :func:`discrete_counts`: non-zero entries overall
    (``nonzero``) and per stage (``nonzero/<stage>``), and where a stage has discrete weights of
    two or more dimensions, dead output units per stage (``dead/<stage>``) and over all of them
    (``dead``)."""
    if not per:
        return {}
    total = sum(s.size for s in per.values())
    out = {"nonzero": sum(s.nonzero for s in per.values()) / total if total else 0.0}
    for stage, s in per.items():
        out[f"nonzero/{stage}"] = s.nonzero / s.size if s.size else 0.0
    units = sum(s.units for s in per.values())
    for stage, s in per.items():
        if s.units:
            out[f"dead/{stage}"] = s.dead / s.units
    if units:
        out["dead"] = sum(s.dead for s in per.values()) / units
    return out
