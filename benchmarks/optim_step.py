"""Time of a training step with ocdl.optim's optimizers against a plain torch Adam step.

The network is the paper's MNIST FC net as ``nn.Sequential`` (784-2048-2048-2048-10, Linear
without bias → BatchNorm1d(eps=1e-4) → ReLU ×3, Linear → BatchNorm1d; squared hinge), at batch
100. A step is ``zero_grad(); loss.backward(); opt.step()`` (forward pass included), the
reference's optimizer ``torch.optim.Adam`` (torch's defaults; on the CPU its single-tensor
form) on the real net, ``torch Adam (fused)`` the same with ``fused=True``, each variant's
``ocdl.optim`` optimizer on its own copy with the Linear weights ternary or binary and the
BatchNorm parameters real (Adam, as E-MSA's rule).

All variants run side by side in one process on one fixed batch: ``--warmup`` steps each, then
``--rounds`` × ``--iters`` timed steps per variant, interleaved step by step in a shuffled order
so that a busy machine disturbs all alike (CUDA: synchronised after every step). Printed: the
median ms per step and its ratio to the torch Adam step.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/optim_step.py --iters 20 --rounds 3
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ocdl  # noqa: E402
from ocdl.costs import squared_hinge  # noqa: E402

REFERENCE = "torch Adam"
VARIANTS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    REFERENCE: lambda m: torch.optim.Adam(m.parameters()),
    "torch Adam (fused)": lambda m: torch.optim.Adam(m.parameters(), fused=True),
    "EMSA ternary": lambda m: ocdl.optim.EMSA(
        ocdl.optim.groups(m, {"Linear": {"control": ocdl.Ternary(), "l1": 1e-7}}), rho=0.25),
    "EMSA binary": lambda m: ocdl.optim.EMSA(
        ocdl.optim.groups(m, {"Linear": ocdl.Binary()}), rho=0.5),
    "Bop": lambda m: ocdl.optim.Bop(ocdl.optim.groups(m, {"Linear": ocdl.Binary()})),
    "BinaryConnect": lambda m: ocdl.optim.BinaryConnect(
        ocdl.optim.groups(m, {"Linear": ocdl.Binary()})),
    "TWN": lambda m: ocdl.optim.TWN(ocdl.optim.groups(m, {"Linear": ocdl.Ternary()})),
}


def mnist_fc(widths=(784, 2048, 2048, 2048, 10)) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (a, b) in enumerate(zip(widths, widths[1:]), 1):
        layers[f"fc{i}"] = nn.Linear(a, b, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm1d(b, eps=1e-4)
        if i < len(widths) - 1:
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def stepper(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
            ) -> Callable[[], None]:
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        squared_hinge(model(x), y).mean().backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--iters", type=int, default=20, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--only", default="", help="variants to time besides the reference, "
                    "separated by ';' (default: all)")
    ap.add_argument("--small", action="store_true",
                    help="a 784-64-64-10 net (a smoke test of the script, not a benchmark)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = [n.strip() for n in a.only.split(";") if n.strip()] or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose among {list(VARIANTS)}")
    names = [REFERENCE] + [n for n in names if n != REFERENCE]
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch, 784, generator=g).to(dev)
    y = torch.randint(0, 10, (a.batch,), generator=g).to(dev)
    widths = (784, 64, 64, 10) if a.small else (784, 2048, 2048, 2048, 10)
    steps = {}
    for n in names:
        torch.manual_seed(0)
        model = mnist_fc(widths).to(dev)
        steps[n] = stepper(model, VARIANTS[n](model), x, y)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        for f in steps.values():
            f()
    sync()
    times: dict[str, list[float]] = {n: [] for n in names}
    order = list(names)
    rng = random.Random(0)
    for _ in range(a.rounds):
        for _ in range(a.iters):
            rng.shuffle(order)
            for n in order:
                t0 = time.perf_counter()
                steps[n]()
                sync()
                times[n].append(time.perf_counter() - t0)
    ref = statistics.median(times[REFERENCE])
    print(f"# MNIST FC {'-'.join(map(str, widths))}, batch {a.batch}, {dev}, "
          f"{torch.get_num_threads()} threads, {a.rounds}x{a.iters} steps each (median)")
    print(f"{'variant':<22}{'ms/step':>10}{'ratio':>8}")
    for n in names:
        med = statistics.median(times[n])
        print(f"{n:<22}{1e3 * med:>10.2f}{med / ref:>8.2f}")


if __name__ == "__main__":
    main()
