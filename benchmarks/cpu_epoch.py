"""Epoch time of the paper's MNIST net on this CPU against the floor of its matrix products.

For each solver (and ``--amp`` setting) one epoch of ``ocdl solve`` on the real dataset (MNIST by
default; ``--limit`` runs part of an epoch and scales its time to the full one), the training
time without the evaluation taken from the run's log, next to:

* the **matmul floor**: the matrix products one training step of this network must do (forward
  X·Wᵀ of every dense layer, the costate/gradient G·W of every layer but the first, the weight
  gradient Gᵀ·X of every layer), each timed on its own in this run at the model's batch size,
  in float32 and in bfloat16, summed and multiplied by the steps of an epoch;
* a **plain torch epoch**: the same network as ``nn.Sequential`` with ``loss.backward();
  torch.optim.Adam.step()`` on one fixed batch, times the steps of an epoch (no data loading).

Printed: seconds per epoch and the ratios to the float32 floor and to the bfloat16 floor, all
measured side by side in one process (solvers in a shuffled order, medians over ``--repeats``).

    OCDL_DATA=../shared/datasets .venv/bin/python benchmarks/cpu_epoch.py
    .venv/bin/python benchmarks/cpu_epoch.py --solvers emsa-ternary,bop --amp off,bf16 --limit 12000
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import make_plain_step  # noqa: E402


def median_time(f: Callable[[], object], reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def net_facts(model: str) -> tuple[list[tuple[int, int]], int, int]:
    """(out, in) of every dense weight of ``model`` in stage order, its batch size and the
    steps of a full training epoch."""
    from ocdl.data.feeder import make_feeders
    from ocdl.models import resolve_model
    from ocdl.modelspec import load_spec
    spec = load_spec(resolve_model(model))
    system = spec.compile(device="cpu", seed=0)
    shapes = [tuple(system.theta[c.name].shape) for c in system.controls
              if c.has_units and system.theta[c.name].dim() == 2]
    steps = len(make_feeders(spec.data, system.input_shape, "cpu").train)
    return shapes, int(spec.data.batch_size), steps  # type: ignore[return-value]


def matmul_floor(shapes: list[tuple[int, int]], batch: int, dtype: torch.dtype,
                 reps: int) -> float:
    """Seconds of the matrix products of one training step (see the module docstring)."""
    total = 0.0
    for i, (n_out, n_in) in enumerate(shapes):
        x = torch.randn(batch, n_in, dtype=dtype)
        w = torch.randn(n_out, n_in, dtype=dtype)
        g = torch.randn(batch, n_out, dtype=dtype)
        total += median_time(lambda: x @ w.t(), reps)          # forward
        if i > 0:
            total += median_time(lambda: g @ w, reps)          # costate of the layer's input
        total += median_time(lambda: g.t() @ x, reps)          # weight gradient (M)
    return total


def epoch_seconds(model: str, solver: str, amp: str, limit: int | None, steps: int) -> float:
    """Training seconds of one epoch of ``ocdl solve`` (the log's ``train_time``), scaled to
    ``steps`` when ``limit`` cut the epoch short."""
    from ocdl.api import solve
    from ocdl.run.metrics import read_log
    overrides: dict[str, object] = {"run.amp": amp}
    if limit:
        overrides["data.limit"] = limit
    with tempfile.TemporaryDirectory() as tmp:
        res = solve(model, solver, epochs=1, device="cpu", out=Path(tmp) / "run",
                    overrides=overrides)
        rec = [r for r in read_log(res.run_dir / "log.jsonl") if r.get("type") == "epoch"][-1]
    return float(rec["train_time"]) * steps / int(rec["iters"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist-fc-binary")
    ap.add_argument("--solvers", default="emsa-binary,bop,binaryconnect",
                    help="comma-separated presets (each on the model as it is)")
    ap.add_argument("--amp", default="off,bf16", help="comma-separated run.amp settings")
    ap.add_argument("--limit", type=int, default=0,
                    help="training samples to run (0: the full epoch); the time is scaled up, "
                         "warm-up included, so run a few thousand at least")
    ap.add_argument("--repeats", type=int, default=1, help="epochs per solver (median)")
    ap.add_argument("--reps", type=int, default=20, help="timed repeats of each matmul")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes, batch, steps = net_facts(args.model)
    floors = {"float32": matmul_floor(shapes, batch, torch.float32, args.reps) * steps,
              "bfloat16": matmul_floor(shapes, batch, torch.bfloat16, args.reps) * steps}

    x = torch.randn(batch, shapes[0][1])
    y = torch.randint(0, 10, (batch,))
    plain = {}
    if shapes == [(2048, 784), (2048, 2048), (2048, 2048), (10, 2048)]:  # the paper's net
        for amp in args.amp.split(","):
            step = make_plain_step(torch.device("cpu"), x, y, amp=amp == "bf16")
            plain[amp] = median_time(step, args.reps) * steps

    runs: dict[tuple[str, str], list[float]] = {}
    order = [(s, a) for s in args.solvers.split(",") for a in args.amp.split(",")] * args.repeats
    random.Random(0).shuffle(order)
    for solver, amp in order:
        runs.setdefault((solver, amp), []).append(
            epoch_seconds(args.model, solver, amp, args.limit or None, steps))

    print(f"{args.model}, batch {batch}, {steps} steps an epoch, cpu (threads: "
          f"{torch.get_num_threads()}), torch {torch.__version__}"
          + (f", {args.limit} samples run and scaled to the epoch" if args.limit else ""))
    print(f"matmul floor: float32 {floors['float32']:.4g} s/epoch, "
          f"bfloat16 {floors['bfloat16']:.4g} s/epoch")
    print(f"{'variant':34s} {'s/epoch':>8s} {'/fp32 floor':>12s} {'/bf16 floor':>12s}")

    def row(name: str, t: float) -> None:
        print(f"{name:34s} {t:8.4g} {t / floors['float32']:12.2f} {t / floors['bfloat16']:12.2f}")
    for amp, t in plain.items():
        row(f"torch Adam step × steps (amp {amp})", t)
    for (solver, amp), ts in sorted(runs.items()):
        row(f"ocdl solve {solver} (amp {amp})", statistics.median(ts))


if __name__ == "__main__":
    main()
