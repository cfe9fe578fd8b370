"""Continuous E-MSA against Adam on the same residual CNN, side by side in one process.

Both start from the same initial controls (same seed) and see the same batches; printed: the
training loss against iterations and against wall time, test accuracy at the end, and the
median time per iteration with its ratio. The JMLR paper (Li, Chen, Tai & E 2018) found E-MSA
better per iteration and several times slower in wall time; this measures where ocdl stands.

    python benchmarks/emsa_vs_adam.py [--model mnist-resnet] [--iters 100]
        [--device cpu|cuda] [--threads N] [--profile TOP] [--set emsa.rho_real=1e-5 ...]

Data come from the model's data block (``$OCDL_DATA``; ``--data mnist-subset`` for the embedded
subset).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import ocdl
from ocdl.data import make_feeders
from ocdl.models import resolve_model
from ocdl.run.overrides import parse_sets
from ocdl.solvers import make_solver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist-resnet",
                    help="a model spec file or a shipped model's name")
    ap.add_argument("--data", help="dataset name overriding the model's (e.g. mnist-subset)")
    ap.add_argument("--solvers", default="emsa,adam")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="SOLVER.KEY=VALUE, e.g. emsa.rho_real=1e-5")
    ap.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    ap.add_argument("--profile", type=int, default=0, metavar="TOP",
                    help="after the timed iterations, torch.profiler over 3 more steps of each "
                         "solver: the TOP operators by self time (CPU, or CUDA kernels)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    spec = ocdl.load_spec(resolve_model(args.model))
    if args.data:
        import dataclasses
        spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, name=args.data))
    feeders = make_feeders(spec.data, tuple(spec.input), dev)
    batches = []
    for x, y in feeders.train.epoch(1):
        batches.append((x, y))
        if len(batches) >= args.iters:
            break
    overrides: dict[str, dict] = {}
    for k, v in parse_sets(args.sets).items():
        name, _, key = k.partition(".")
        overrides.setdefault(name, {})[key] = v
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows, profiles = {}, {}
    for name in args.solvers.split(","):
        system = spec.compile(device=dev, seed=0)
        solver = make_solver(name, overrides.get(name, {}))
        state = solver.init(system)
        losses, times, t_total = [], [], 0.0
        for i in range(args.iters):
            x, y = batches[i % len(batches)]
            sync()
            t0 = time.perf_counter()
            state, m = solver.step(system, state, x, y)
            sync()
            dt = time.perf_counter() - t0
            t_total += dt
            times.append(dt)
            losses.append(float(m["loss"]))
        correct = n = 0
        for x, y in feeders.test.epoch(1):
            correct += int((system.predict(x).argmax(1) == y).sum())
            n += len(y)
        if args.profile:  # after the test: these steps change θ
            profiles[name] = profiled(lambda: solver.step(system, state, *batches[0]), dev,
                                      args.profile)
        rows[name] = (losses, times, correct / max(n, 1))
    base = statistics.median(rows[args.solvers.split(",")[-1]][1])
    print(f"{spec.name} on {dev}, {args.iters} iterations of batch {spec.data.batch_size}, same "
          "initial controls and batches")
    marks = sorted({max(1, args.iters // k) for k in (10, 4, 2, 1)})
    print(f"{'solver':10s} " + " ".join(f"loss@{k:<5d}" for k in marks)
          + "  test acc   ms/iter  ratio   wall")
    for name, (losses, times, acc) in rows.items():
        avg = [statistics.fmean(losses[max(0, k - 5):k]) for k in marks]
        med = statistics.median(times)
        print(f"{name:10s} " + " ".join(f"{v:10.4f}" for v in avg)
              + f"  {100 * acc:7.2f} %  {1e3 * med:8.1f}  {med / base:5.2f}  {sum(times):6.1f} s")
    for name, table in profiles.items():
        print(f"\n== {name}: torch.profiler over 3 steps\n{table}")


def profiled(step, dev: torch.device, top: int) -> str:
    """torch.profiler's table of 3 calls of ``step`` (the top ``top`` rows by self time)."""
    from torch.profiler import ProfilerActivity, profile
    cuda = dev.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for _ in range(3):
            step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=50)


if __name__ == "__main__":
    main()
