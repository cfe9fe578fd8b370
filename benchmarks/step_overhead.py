"""Time per training iteration of ocdl's solvers against a plain hand-written torch loop.

The network is the paper's MNIST FC net (models/mnist-fc-ternary.yaml: 784-2048-2048-2048-10,
dense without bias → BatchNorm1d(eps=1e-4) → ReLU ×3, dense → BN, squared hinge) at batch 100,
in its ternary form, a binary variant (same spec, ``control: binary``) and a real variant (for
Adam). The reference is the same network as ``nn.Sequential`` trained by
``loss.backward(); torch.optim.Adam(...).step()`` (torch's default Adam settings). On CUDA the
E-MSA variants also run with ``cuda_graph: true`` (their update replayed as one CUDA graph, the
presets' default on CUDA); the plain variants set ``cuda_graph: false``.

All variants run side by side in one process on one fixed batch (no data loading): several
warm-up iterations each, then ``--rounds`` × ``--iters`` timed iterations per variant, interleaved
step by step in a shuffled order so that a busy machine disturbs all variants alike (CUDA:
synchronised after every iteration). Printed: the median ms per iteration and its ratio to the
plain torch step.

    .venv/bin/python benchmarks/step_overhead.py --device cpu --iters 30
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocdl.solvers import make_solver  # noqa: E402
from ocdl.spec import loads_spec  # noqa: E402

MODEL = ROOT / "models" / "mnist-fc-ternary.yaml"


def spec_variant(kind: str):
    """The MNIST FC spec with its weights' set replaced by ``kind`` (ternary keeps the file)."""
    text = MODEL.read_text(encoding="utf-8")
    if kind != "ternary":
        text = text.replace("control: ternary", f"control: {kind}" if kind != "real" else
                            "control: real").replace("name: mnist-fc-ternary",
                                                     f"name: mnist-fc-{kind}")
    return loads_spec(text, file=f"<mnist-fc-{kind}>")


def plain_torch(device: torch.device, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    d = 784
    for _ in range(3):
        layers += [nn.Linear(d, 2048, bias=False), nn.BatchNorm1d(2048, eps=1e-4), nn.ReLU()]
        d = 2048
    layers += [nn.Linear(2048, 10, bias=False), nn.BatchNorm1d(10, eps=1e-4)]
    return nn.Sequential(*layers).to(device)


def make_plain_step(device: torch.device, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    net = plain_torch(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target = nn.functional.one_hot(y, 10).to(x.dtype).mul(2).sub(1)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = torch.relu(1 - target * out).square().mean()
        loss.backward()
        opt.step()
    return step


def make_ocdl_step(kind: str, solver: str, device: torch.device, x: torch.Tensor,
                   y: torch.Tensor, overrides: dict | None = None) -> Callable[[], None]:
    system = spec_variant(kind).compile(device=device, seed=0)
    s = make_solver(solver, overrides)
    box = {"state": s.init(system)}

    def step() -> None:
        box["state"], _ = s.step(system, box["state"], x, y)
    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up iterations per variant")
    ap.add_argument("--only", default="", help="comma-separated variant names to run")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator().manual_seed(0)
    x = torch.rand(100, 784, generator=g).to(device)
    y = torch.randint(0, 10, (100,), generator=g).to(device)

    variants: dict[str, Callable[[], Callable[[], None]]] = {
        "torch Adam (plain)": lambda: make_plain_step(device, x, y),
        "E-MSA binary": lambda: make_ocdl_step("binary", "emsa-binary", device, x, y,
                                               {"cuda_graph": False}),
        "E-MSA ternary": lambda: make_ocdl_step("ternary", "emsa-ternary", device, x, y,
                                                {"cuda_graph": False}),
        "MSA ternary": lambda: make_ocdl_step("ternary", "msa", device, x, y),
        "Adam (ocdl, real)": lambda: make_ocdl_step("real", "adam", device, x, y),
        "BinaryConnect": lambda: make_ocdl_step("binary", "binaryconnect", device, x, y),
    }
    if device.type == "cuda":
        variants["E-MSA binary, graph"] = lambda: make_ocdl_step(
            "binary", "emsa-binary", device, x, y, {"cuda_graph": True})
        variants["E-MSA ternary, graph"] = lambda: make_ocdl_step(
            "ternary", "emsa-ternary", device, x, y, {"cuda_graph": True})
    if args.only:
        keep = {v.strip() for v in args.only.split(",")}
        variants = {k: v for k, v in variants.items() if k in keep or k == "torch Adam (plain)"}
    steps = {name: build() for name, build in variants.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    rng = random.Random(0)
    for _ in range(args.rounds):
        for _ in range(args.iters):  # interleaved step by step, in a shuffled order
            rng.shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                steps[name]()
                sync()
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["torch Adam (plain)"])
    dev = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"MNIST FC 784-2048x3-10, batch 100, {dev}, torch {torch.__version__}, "
          f"{args.rounds} rounds x {args.iters} iters (median)")
    print(f"{'variant':<22} {'ms/iter':>9} {'ratio':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<22} {med * 1e3:9.2f} {med / base:7.2f}")
    if device.type == "cuda":
        print("('graph': the update after the reverse pass replayed as one CUDA graph, "
              "setting cuda_graph: true)")


if __name__ == "__main__":
    main()
