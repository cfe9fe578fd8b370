"""Training throughput (samples per second) of each zoo model under its default E-MSA solver,
next to a plain torch forward + backward of the same compiled network on the same batch.

    python benchmarks/zoo_throughput.py [--device cuda] [--iters 20] [--models mnist-fc-ternary,...]
        [--batch 400]

Random inputs of the model's shape and batch size (no data loading); medians over the timed
iterations after warm-up; the ratio is ocdl step time ÷ plain forward+backward time.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import ocdl
from ocdl.models import model_names, model_path
from ocdl.solvers import make_solver


def timed(fn, iters: int, sync) -> float:
    ts = []
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", help="comma-separated model names (default: every model with "
                                     "a dataset)")
    ap.add_argument("--amp", action="store_true",
                    help="forward passes under bfloat16 autocast (run.amp=bf16), both columns")
    ap.add_argument("--batch", type=int, default=0,
                    help="batch size instead of each model's data.batch_size (the solver's "
                         "settings unchanged: a speed probe, not a recipe)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # as ocdl runs do (run.cudnn_benchmark)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    wanted = set(args.models.split(",")) if args.models else None
    print(f"device {dev}; median of {args.iters} iterations after {args.warmup} warm-up"
          + ("; bfloat16 autocast (run.amp=bf16)" if args.amp else ""))
    print(f"{'model':28s} {'solver':14s} {'batch':>5s} {'step ms':>9s} {'samples/s':>10s} "
          f"{'fwd+bwd ms':>10s} {'ratio':>6s}  (ratio: step ÷ forward+backward without update)")
    failed = []
    for name in model_names():
        spec = ocdl.load_spec(model_path(name))
        if not spec.takes_data or spec.data is None:
            continue
        if spec.data.name == "inline" or (wanted and spec.name not in wanted):
            continue
        try:
            row = measure(spec, dev, args.iters, args.warmup, sync, args.amp, args.batch)
        except Exception as e:  # report and go on with the other models
            failed.append(spec.name)
            print(f"{spec.name:28s} FAILED: {type(e).__name__}: {e}")
            continue
        print(row)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def measure(spec, dev: torch.device, iters: int, warmup: int, sync, amp: bool = False,
            batch: int = 0) -> str:
    """One table row: the default E-MSA step and a forward+backward of ``spec`` on a random
    batch (of ``batch`` samples, else the model's batch size)."""
    system = spec.compile(device=dev, seed=0)
    solver_name = spec.default_solver()
    solver = make_solver(solver_name, {})
    if amp:
        reason = solver.amp_unsafe(system)
        if reason:
            return f"{spec.name:28s} {solver_name:14s} skipped: not with bf16 ({reason})"
        system.autocast = torch.bfloat16  # as run.amp=bf16 does
    state = solver.init(system)
    S = batch or spec.data.batch_size
    x = torch.rand(S, *spec.input, device=dev)
    y = torch.randint(system.output_shape[0], (S,), device=dev)
    box = {"state": state}

    def step():
        box["state"], _ = solver.step(system, box["state"], x, y)

    def plain():
        J, _ = system.objective(system.forward(x), y)
        J.backward()
        for t in system.theta.values():
            t.grad = None

    for _ in range(warmup):
        step(), plain()
    t_step = timed(step, iters, sync)
    t_plain = timed(plain, iters, sync)
    return (f"{spec.name:28s} {solver_name:14s} {S:5d} {1e3 * t_step:9.2f} {S / t_step:10.0f} "
            f"{1e3 * t_plain:10.2f} {t_step / t_plain:6.2f}")

if __name__ == "__main__":
    main()
