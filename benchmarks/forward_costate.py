"""Forward + costate pass of ocdl's System against a plain torch forward + backward.

Same network (the paper's MNIST FC net, the model mnist-fc-ternary), same weights, same batch,
measured side by side in one process with interleaved rounds; prints medians and the ratio.

    python benchmarks/forward_costate.py [--device cpu|cuda] [--batch 100] [--rounds 15]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import ocdl
from ocdl.models import model_path


def plain_net(system: ocdl.System) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for st in system.stages:
        if st.op.name == "dense":
            w = system.theta[st.controls["weight"]].detach()
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            lin.weight.data.copy_(w)
            layers.append(lin)
        elif st.op.name == "batchnorm":
            layers.append(torch.nn.BatchNorm1d(st.out_shape[0], eps=st.params["eps"]))
        elif st.op.name == "relu":
            layers.append(torch.nn.ReLU())
        else:
            raise ValueError(st.op.name)
    return torch.nn.Sequential(*layers).to(system.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=5, help="passes per timed round")
    args = ap.parse_args()
    dev = torch.device(args.device)
    system = ocdl.load_spec(model_path("mnist-fc-ternary")).compile(device=dev)
    net = plain_net(system)
    x = torch.rand(args.batch, 784, device=dev)
    y = torch.randint(10, (args.batch,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def ours():
        c = system.costates(system.forward(x), y)
        return c.M

    def plain():
        net.zero_grad(set_to_none=True)
        out = net(x)
        yy = 2 * F.one_hot(y, 10).to(out.dtype) - 1
        torch.relu(1 - yy * out).square().mean().backward()

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            fn()
        sync()
        return (time.perf_counter() - t0) / args.iters

    for _ in range(3):
        ours(), plain()
    a, b = [], []
    for _ in range(args.rounds):  # interleave to share the machine's noise
        a.append(timed(ours))
        b.append(timed(plain))
    ma, mb = statistics.median(a), statistics.median(b)
    ratios = [x / y for x, y in zip(a, b)]
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'},"
          f" {torch.get_num_threads()} threads), batch {args.batch}, {args.rounds} rounds × "
          f"{args.iters} passes")
    print(f"ocdl forward+costates : {ma * 1e3:8.2f} ms (median)")
    print(f"plain torch fwd+bwd   : {mb * 1e3:8.2f} ms (median)")
    print(f"ratio (median of medians) {ma / mb:.3f}; median of per-round ratios "
          f"{statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
