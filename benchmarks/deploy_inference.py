"""Packed inference (ocdl.deploy.load_packed_module: discrete weights kept packed, unpacked in
blocks, BatchNorm folded) against the float32 torch module (System.to_module) of the same
network on the CPU: resident weight memory, latency at batch 1 and time per batch of 256,
interleaved rounds, medians, ratios side by side.

    python benchmarks/deploy_inference.py --threads 1
    python benchmarks/deploy_inference.py --nets cifar10-binary --big-batch 16

Each network is compiled with seed 0 (random controls on their levels, BatchNorm statistics
at their initial values) and written through the packed writer; memory and speed do not depend
on the trained values (except the csr kernel, which is picked only for very sparse weights).
Columns: bytes of parameters + buffers (float32 module / packed module and their ratio), then
per batch size the median ms per call of each and packed/float (> 1: packed is slower).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

DEFAULT_NETS = "quickstart,mnist-fc-binary,mnist-fc-ternary"


def per_call(f, x, iters: int) -> float:
    """Milliseconds per call of ``f(x)`` over ``iters`` calls."""
    t0 = time.perf_counter()
    for _ in range(iters):
        f(x)
    return (time.perf_counter() - t0) / iters * 1e3


def bench(name: str, args, tmp: Path) -> tuple[list[str], dict[str, str]]:
    from ocdl.deploy import load_packed_module
    from ocdl.deploy.packed_kernels import nbytes
    from ocdl.deploy.packed_module import choices
    from ocdl.deploy.packed_write import write_packed
    from ocdl.deploy.source import Trained
    from ocdl.run.lifecycle import load_model
    system = load_model(name).compile(device="cpu", seed=0)
    path = write_packed(Trained(system, system.spec.to_yaml(), Path(name), "final"),
                        tmp / f"{name}.ocdl")
    floating = system.to_module()
    packed = load_packed_module(path, tune_batch=args.tune_batch)
    mem_f, mem_p = nbytes(floating), nbytes(packed)
    row = [name, f"{mem_f:,}", f"{mem_p:,}", f"{mem_f / mem_p:.1f}x"]
    g = torch.Generator().manual_seed(0)
    conv = len(system.input_shape) == 3
    for batch in (1, args.big_batch if not conv else args.conv_batch):
        x = torch.randn(batch, *system.input_shape, generator=g)
        times: dict[str, list[float]] = {"float": [], "packed": []}
        with torch.no_grad():
            floating(x), packed(x)  # warm up
            for _ in range(args.rounds):  # interleaved: float, packed, float, packed, ...
                times["float"].append(per_call(floating, x, args.iters))
                times["packed"].append(per_call(packed, x, args.iters))
        f, p = statistics.median(times["float"]), statistics.median(times["packed"])
        row += [f"b{batch}", f"{f:.3f}", f"{p:.3f}", f"{p / f:.2f}"]
    return row, choices(packed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=DEFAULT_NETS, help="comma-separated shipped models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--big-batch", type=int, default=256, help="the throughput batch (FC nets)")
    ap.add_argument("--conv-batch", type=int, default=16,
                    help="the throughput batch of conv nets (256 takes seconds a call)")
    ap.add_argument("--tune-batch", type=int, default=8,
                    help="the batch on which each layer's kernel is measured")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds x "
          f"{args.iters} calls, medians; ms per call; ratio = packed / float32")
    print(f"{'net':18} {'float32 B':>12} {'packed B':>10} {'mem':>6}   "
          f"{'batch':>5} {'float ms':>9} {'packed ms':>9} {'ratio':>6}   "
          f"{'batch':>5} {'float ms':>9} {'packed ms':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n.strip() for n in args.nets.split(",") if n.strip()]:
            row, picked = bench(name, args, Path(tmp))
            print(f"{row[0]:18} {row[1]:>12} {row[2]:>10} {row[3]:>6}   "
                  f"{row[4]:>5} {row[5]:>9} {row[6]:>9} {row[7]:>6}   "
                  f"{row[8]:>5} {row[9]:>9} {row[10]:>9} {row[11]:>6}", flush=True)
            print(f"#   kernels: {', '.join(f'{k}={v}' for k, v in picked.items())}",
                  flush=True)


if __name__ == "__main__":
    main()
