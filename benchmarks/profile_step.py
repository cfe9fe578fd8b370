"""Where a training step's time goes: torch.profiler over a few steps of a zoo model's solver
next to the plain torch step of the same network (benchmarks/step_overhead.py), kernels ranked
by device time (CUDA) or operators by CPU time.

    python benchmarks/profile_step.py --device cuda --net cifar10 [--amp] [--nhwc] [--steps 10]

Prints, for each of the two steps, the total device (or CPU) time per step and the top
``--top`` rows of ``torch.profiler``'s table, so the next optimisation can be chosen from
measurements (convolutions, BatchNorm, layout transposes, the update) rather than guesses.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import NETS, make_ocdl_step, make_plain_step  # noqa: E402


def profiled(step, steps: int, warmup: int, device: torch.device, top: int, title: str) -> None:
    for _ in range(warmup):
        step()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    total = sum(getattr(e, key) for e in events) / steps / 1e3
    print(f"\n== {title}: {total:.2f} ms of {'device' if cuda else 'CPU'} time per step "
          f"(sum of self times over {steps} steps)")
    print(events.table(sort_by=key, row_limit=top, max_name_column_width=60))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--net", default="cifar10", choices=sorted(NETS))
    ap.add_argument("--kind", default="ternary", choices=["binary", "ternary"])
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast in both steps")
    ap.add_argument("--nhwc", action="store_true", help="channels-last images in both steps")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # as ocdl runs do (run.cudnn_benchmark)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(100, *NETS[args.net][1], generator=g).to(device)
    y = torch.randint(0, 10, (100,), generator=g).to(device)
    solver = f"emsa-{args.kind}"
    graph = {"cuda_graph": device.type == "cuda"}
    prec = ("bf16 autocast" if args.amp else "float32/TF32") + (", NHWC" if args.nhwc else "")
    profiled(make_plain_step(device, x, y, args.net, amp=args.amp, channels_last=args.nhwc),
             args.steps, args.warmup, device, args.top,
             f"plain torch Adam step, {NETS[args.net][2]}, {prec}")
    profiled(make_ocdl_step(args.kind, solver, device, x, y, graph, args.net, amp=args.amp,
                            channels_last=args.nhwc),
             args.steps, args.warmup, device, args.top, f"ocdl {solver} step, {prec}")


if __name__ == "__main__":
    main()
