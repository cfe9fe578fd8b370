"""Data-parallel scaling on this machine, and a model of the communication cost.

1. Training throughput (samples per second) of ``ocdl solve`` on 1 and on 2 processes (gloo on
   the CPU, one thread per process; ``data.batch_size`` per process, so 2 processes train on
   global batches twice as large), side by side with the parallel efficiency
   (speedup / processes). The first epoch is a warm-up; the rest are timed without their
   evaluations (the log's ``epoch_time − eval_time``).
2. The bytes a step all-reduces for each shipped zoo model (one flat buffer of M or the
   gradient: the number of controls × 4 bytes in float32) and the time a ring all-reduce takes
   on N processes, 2(N−1)/N × bytes / bandwidth, on NVLink (~300 GB/s) and 100 GbE (~12 GB/s):
   a step shorter than that time cannot hide the communication (it becomes communication-bound).

    .venv/bin/python benchmarks/scaling.py                      # both parts
    .venv/bin/python benchmarks/scaling.py --model-only         # only the communication model
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ("quickstart", "mnist-fc-ternary", "cifar10-ternary")
LINKS = (("NVLink", 300e9), ("100 GbE", 12e9))


def throughput(nproc: int, args: argparse.Namespace) -> float:
    """Samples per second of the timed epochs of one run on ``nproc`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "ocdl.cli", "solve", args.model, "--solver", args.solver,
               "--epochs", str(args.epochs), "--device", "cpu", "-q", "--out", "run",
               "--set", f"data.limit={args.limit}", "--set", f"data.batch_size={args.batch}",
               "--set", "run.log_every=1000"]
        if nproc > 1:
            cmd += ["--nproc", str(nproc)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"ocdl solve on {nproc} process(es) failed:\n{r.stderr[-2000:]}")
        log = [json.loads(line) for line in (Path(tmp) / "run" / "log.jsonl").open()]
    epochs = [e for e in log if e.get("type") == "epoch"][1:]  # the first one warms up
    iters = [e["iters"] for e in log if e.get("type") == "epoch"]
    steps = iters[-1] - iters[0]
    seconds = sum(e["epoch_time"] - e["eval_time"] for e in epochs)
    return steps * nproc * args.batch / seconds


_MATMUL = """
import time, torch
torch.set_num_threads(1)
a, w = torch.randn(500, 784), torch.randn(784, 256)
for _ in range(10): a @ w
t = time.perf_counter()
for _ in range(300): a @ w
print(300 / (time.perf_counter() - t))
"""


def ceiling() -> float:
    """The machine's own limit on a 2-process speedup: matrix products per second of two
    independent one-thread processes run at once, over those of one alone (2.0 on two free
    cores; less where the cores share a quota or a physical core)."""
    def rates(n: int) -> list[float]:
        procs = [subprocess.Popen([sys.executable, "-c", _MATMUL], stdout=subprocess.PIPE,
                                  text=True) for _ in range(n)]
        return [float(p.communicate()[0]) for p in procs]
    return sum(rates(2)) / rates(1)[0]


def controls(model: str) -> int:
    """The number of controls θ of a shipped model (compiled on the CPU)."""
    import torch

    from ocdl.models import resolve_model
    from ocdl.modelspec import load_spec
    return load_spec(resolve_model(model)).compile(device="cpu", dtype=torch.float32).num_params()


def communication_model(world_sizes: tuple[int, ...] = (2, 8)) -> None:
    print("communication per step: one all-reduce of the controls' M or gradient (float32)")
    head = f"{'model':<18} {'controls':>11} {'bytes':>10}"
    for n in world_sizes:
        for name, _ in LINKS:
            head += f" {f'{name} N={n}':>15}"
    print(head)
    for model in ZOO:
        p = controls(model)
        b = 4 * p
        row = f"{model:<18} {p:>11,} {b / 1e6:>8.2f}MB"
        for n in world_sizes:
            for _, bw in LINKS:
                row += f" {2 * (n - 1) / n * b / bw * 1e3:>12.3f} ms"
        print(row)
    print("a ring all-reduce moves 2(N−1)/N × bytes per process; a step shorter than the time "
          "shown cannot hide it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="quickstart")
    ap.add_argument("--solver", default="emsa-ternary")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first warms up)")
    ap.add_argument("--limit", type=int, default=4000, help="data.limit")
    ap.add_argument("--batch", type=int, default=100, help="data.batch_size per process")
    ap.add_argument("--model-only", action="store_true", help="only the communication model")
    args = ap.parse_args()
    if not args.model_only:
        print(f"{args.model}, {args.solver}, batch {args.batch} per process, "
              f"{os.cpu_count()} cores, 1 thread per process, gloo")
        one = throughput(1, args)
        two = throughput(2, args)
        print(f"{'processes':>9} {'samples/s':>10} {'speedup':>8} {'efficiency':>10}")
        for n, t in ((1, one), (2, two)):
            print(f"{n:>9} {t:>10.0f} {t / one:>8.2f} {t / one / n:>10.0%}")
        print(f"this machine's ceiling: two independent one-thread processes compute "
              f"{ceiling():.2f}× what one does")
        print()
    communication_model()


if __name__ == "__main__":
    main()
