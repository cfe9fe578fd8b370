"""Time per training iteration of ocdl's solvers against a plain hand-written torch loop.

The network (``--net``) is the paper's MNIST FC net (``mnist-fc``, the model mnist-fc-ternary:
784-2048-2048-2048-10, dense without bias → BatchNorm1d(eps=1e-4) → ReLU ×3, dense → BN, squared
hinge) or its CIFAR-10 conv net (``cifar10``, the model cifar10-ternary: 2×128C3-MP2-2×256C3-MP2-
2×512C3-MP2-2×1024FC-10, every conv/dense without bias → BN(eps=1e-4) → ReLU, the output
block BN only), at batch 100, in its ternary form, a binary variant (same spec,
``control: binary``) and a real variant (for Adam). The reference is the same network as
``nn.Sequential`` trained by
``loss.backward(); torch.optim.Adam(...).step()`` (torch's default Adam settings). On CUDA the
E-MSA variants also run with ``cuda_graph: true`` (their update replayed as one CUDA graph, the
presets' default on CUDA) and ``cuda_graph: step`` (the whole step as one graph, against the
plain torch step captured the same way); the plain variants set ``cuda_graph: false``.

All variants run side by side in one process on one fixed batch (no data loading): several
warm-up iterations each, then ``--rounds`` × ``--iters`` timed iterations per variant, interleaved
step by step in a shuffled order so that a busy machine disturbs all variants alike (CUDA:
synchronised after every iteration). Printed: the median ms per iteration and its ratio to the
plain torch step.

    .venv/bin/python benchmarks/step_overhead.py --device cpu --iters 30
    python benchmarks/step_overhead.py --device cuda --net cifar10
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

from ocdl.models import model_path  # noqa: E402
from ocdl.solvers import make_solver  # noqa: E402
from ocdl.modelspec import loads_spec  # noqa: E402

NETS = {"mnist-fc": ("mnist-fc-ternary", (784,), "MNIST FC 784-2048x3-10"),
        "cifar10": ("cifar10-ternary", (3, 32, 32),
                    "CIFAR-10 conv net 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10")}


def spec_variant(kind: str, net: str = "mnist-fc"):
    """The ternary spec of ``net`` with its weights' set replaced by ``kind`` (ternary keeps the
    file)."""
    stem = NETS[net][0]
    text = model_path(stem).read_text(encoding="utf-8")
    name = stem.replace("ternary", kind)
    if kind != "ternary":
        text = text.replace("control: ternary", f"control: {kind}").replace(
            f"name: {stem}", f"name: {name}")
    return loads_spec(text, file=f"<{name}>")


def plain_torch(device: torch.device, seed: int = 0, net: str = "mnist-fc") -> nn.Module:
    """The same network as ``nn.Sequential`` (torch's default initialisation)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    if net == "mnist-fc":
        d = 784
        for _ in range(3):
            layers += [nn.Linear(d, 2048, bias=False), nn.BatchNorm1d(2048, eps=1e-4), nn.ReLU()]
            d = 2048
    else:
        c = 3
        for width in (128, 256, 512):
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width, eps=1e-4), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.Flatten())
        d = 512 * 4 * 4
        for _ in range(2):
            layers += [nn.Linear(d, 1024, bias=False), nn.BatchNorm1d(1024, eps=1e-4), nn.ReLU()]
            d = 1024
    layers += [nn.Linear(d, 10, bias=False), nn.BatchNorm1d(10, eps=1e-4)]
    return nn.Sequential(*layers).to(device)


def make_plain_step(device: torch.device, x: torch.Tensor, y: torch.Tensor,
                    net_name: str = "mnist-fc", amp: bool = False,
                    channels_last: bool = False, graph: bool = False) -> Callable[[], None]:
    """The plain torch step; ``graph``: forward, backward and Adam captured as one CUDA graph
    (torch's whole-network capture recipe: capturable Adam, warm-up on a side stream, the batch
    copied into the graph's input buffer before each replay). The capture runs on the warm-up's
    side stream, as ocdl's :class:`~ocdl.solvers.graphs.GraphedUpdate` does: captured on
    torch's shared default capture stream, this graph's replay hit an illegal memory access on
    an H100 (session 12) once ocdl's graphs had been captured in the same process, while
    ocdl's graphs, each on its own stream, ran."""
    net = plain_torch(device, net=net_name)
    if channels_last and x.dim() == 4:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, capturable=graph)
    target = nn.functional.one_hot(y, 10).to(x.dtype).mul(2).sub(1)
    static_x = x.clone() if graph else x

    def body() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp,
                            cache_enabled=not graph):
            out = net(static_x)
        loss = torch.relu(1 - target * out.float()).square().mean()
        loss.backward()
        opt.step()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        body()
    if not graph:
        return step
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g, stream=side):
        body()

    def replay() -> None:
        static_x.copy_(x)
        g.replay()
    return replay


def make_ocdl_step(kind: str, solver: str, device: torch.device, x: torch.Tensor,
                   y: torch.Tensor, overrides: dict | None = None,
                   net: str = "mnist-fc", amp: bool = False,
                   channels_last: bool = False) -> Callable[[], None]:
    system = spec_variant(kind, net).compile(device=device, seed=0)
    if amp:
        system.autocast = torch.bfloat16  # as run.amp=bf16 does
    system.channels_last = channels_last  # as run.channels_last does
    s = make_solver(solver, overrides)
    box = {"state": s.init(system)}

    def step() -> None:
        box["state"], _ = s.step(system, box["state"], x, y)
    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--net", default="mnist-fc", choices=sorted(NETS),
                    help="the paper's MNIST FC net or its CIFAR-10 conv net")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up iterations per variant")
    ap.add_argument("--only", default="",
                    help="variant names to run, separated by ';' (names hold commas)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # as ocdl runs do (run.cudnn_benchmark)
    net = args.net
    g = torch.Generator().manual_seed(0)
    x = torch.rand(100, *NETS[net][1], generator=g).to(device)
    y = torch.randint(0, 10, (100,), generator=g).to(device)

    def ocdl_step(kind: str, solver: str, overrides: dict | None = None, amp: bool = False,
                  nhwc: bool = False):
        return lambda: make_ocdl_step(kind, solver, device, x, y, overrides, net, amp, nhwc)

    variants: dict[str, Callable[[], Callable[[], None]]] = {
        "torch Adam (plain)": lambda: make_plain_step(device, x, y, net),
        "E-MSA binary": ocdl_step("binary", "emsa-binary", {"cuda_graph": False}),
        "E-MSA ternary": ocdl_step("ternary", "emsa-ternary", {"cuda_graph": False}),
        "E-MSA ternary, nonzero_target": ocdl_step("ternary", "emsa-ternary",
                                                   {"cuda_graph": False, "nonzero_target": 0.02}),
        # every unit keeps a non-zero weight: a per-row argmax and scatter (on the CPU in slices
        # of whole rows)
        "E-MSA ternary, keep_units": ocdl_step("ternary", "emsa-ternary",
                                               {"cuda_graph": False, "keep_units": True}),
        "MSA ternary": ocdl_step("ternary", "msa"),
        "Adam (ocdl, real)": ocdl_step("real", "adam"),
        "BinaryConnect": ocdl_step("binary", "binaryconnect"),
        # bfloat16 autocast (run.amp=bf16), eager, against plain torch under the same autocast:
        # pays on CPUs with bf16 instructions (AVX512-BF16, AMX) as on tensor-core GPUs
        "torch Adam (bf16)": lambda: make_plain_step(device, x, y, net, amp=True),
        "E-MSA ternary (bf16)": ocdl_step("ternary", "emsa-ternary", {"cuda_graph": False},
                                          amp=True),
    }
    if device.type == "cuda":
        variants["E-MSA binary (graph)"] = ocdl_step("binary", "emsa-binary",
                                                    {"cuda_graph": True})
        variants["E-MSA ternary (graph)"] = ocdl_step("ternary", "emsa-ternary",
                                                     {"cuda_graph": True})
        # the whole step (forward, reverse pass, update) as one CUDA graph, cuda_graph: step,
        # against plain torch captured the same way
        variants["torch Adam (graph)"] = lambda: make_plain_step(device, x, y, net, graph=True)
        variants["E-MSA binary (graph step)"] = ocdl_step("binary", "emsa-binary",
                                                         {"cuda_graph": "step"})
        variants["E-MSA ternary (graph step)"] = ocdl_step("ternary", "emsa-ternary",
                                                          {"cuda_graph": "step"})
        variants["E-MSA ternary (graph step), keep_units"] = ocdl_step(
            "ternary", "emsa-ternary", {"cuda_graph": "step", "keep_units": True})
        variants["E-MSA ternary (graph step, bf16)"] = ocdl_step(
            "ternary", "emsa-ternary", {"cuda_graph": "step"}, amp=True)
        variants["BinaryConnect (graph step)"] = ocdl_step("binary", "binaryconnect",
                                                          {"cuda_graph": "step"})
        variants["E-MSA ternary (graph), nonzero_target"] = ocdl_step(
            "ternary", "emsa-ternary", {"cuda_graph": True, "nonzero_target": 0.02})
        variants["E-MSA binary (graph, bf16)"] = ocdl_step("binary", "emsa-binary",
                                                          {"cuda_graph": True}, amp=True)
        variants["E-MSA ternary (graph, bf16)"] = ocdl_step("ternary", "emsa-ternary",
                                                           {"cuda_graph": True}, amp=True)
        if x.dim() == 4:  # channels-last images (run.channels_last), with and without bf16
            variants["torch Adam (NHWC)"] = lambda: make_plain_step(
                device, x, y, net, channels_last=True)
            variants["torch Adam (bf16, NHWC)"] = lambda: make_plain_step(
                device, x, y, net, amp=True, channels_last=True)
            variants["E-MSA ternary (graph, NHWC)"] = ocdl_step(
                "ternary", "emsa-ternary", {"cuda_graph": True}, nhwc=True)
            variants["E-MSA ternary (graph, bf16, NHWC)"] = ocdl_step(
                "ternary", "emsa-ternary", {"cuda_graph": True}, amp=True, nhwc=True)
    if args.only:
        keep = {v.strip() for v in args.only.split(";") if v.strip()}
        unknown = sorted(keep - set(variants))
        if unknown:
            ap.error(f"unknown variant(s) {unknown}; choose from {sorted(variants)}")
        variants = {k: v for k, v in variants.items() if k in keep or k == "torch Adam (plain)"}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps: dict[str, Callable[[], None]] = {}
    failed: dict[str, str] = {}
    for name, build in variants.items():  # a variant that fails is reported, not fatal
        try:
            step = build()
            for _ in range(max(args.warmup, 3 if "graph" in name else 0)):  # warm-up, capture
                step()
            sync()
            steps[name] = step
        except Exception as e:  # noqa: BLE001
            if name == "torch Adam (plain)":
                raise
            failed[name] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    times: dict[str, list[float]] = {name: [] for name in steps}
    crash = timed_rounds(steps, times, sync, args.rounds, args.iters)
    times = {name: ts for name, ts in times.items() if ts}  # a crash can leave some empty
    base = statistics.median(times.get("torch Adam (plain)") or [float("nan")])
    dev = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"{NETS[net][2]}, batch 100, {dev}, torch {torch.__version__}, "
          f"{args.rounds} rounds x {args.iters} iters (median)")
    print(f"{'variant':<34} {'ms/iter':>9} {'ratio':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<34} {med * 1e3:9.2f} {med / base:7.2f}")
    for name, why in failed.items():
        print(f"{name:<34} failed: {why}")
    if crash:
        print(f"(the timing stopped early, in {crash}; a CUDA error such as an illegal memory "
              f"access may surface in a later step than the one that caused it: rerun with "
              f"CUDA_LAUNCH_BLOCKING=1 to name it, or --only to leave variants out)")
    if device.type == "cuda" and not crash:
        print("('graph': the update after the reverse pass replayed as one CUDA graph, "
              "setting cuda_graph: true; 'graph step': the whole step as one CUDA graph, "
              "cuda_graph: step (plain torch: captured as torch's docs show); 'bf16': forward "
              "under bfloat16 autocast, run.amp=bf16; 'NHWC': channels-last images, "
              "run.channels_last=true)")
    if crash:
        raise SystemExit(1)


def timed_rounds(steps: dict[str, Callable[[], None]], times: dict[str, list[float]],
                 sync: Callable[[], None], rounds: int, iters: int) -> str:
    """Time the steps interleaved step by step in a shuffled order, appending to ``times``;
    returns "" or, if a step raised (a CUDA error leaves the process unable to go on), which
    variant and error, so that the times taken so far can still be printed."""
    order = list(steps)
    rng = random.Random(0)
    for _ in range(rounds):
        for _ in range(iters):
            rng.shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                try:
                    steps[name]()
                    sync()
                except Exception as e:  # noqa: BLE001
                    return f"{name}: {type(e).__name__}: {e}".splitlines()[0][:200]
                times[name].append(time.perf_counter() - t0)
    return ""


if __name__ == "__main__":
    main()
