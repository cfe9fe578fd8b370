#!/usr/bin/env python3
"""How far ``run.amp=bf16`` (or TF32) takes M = −∇_θ J from float32, on a run's trained network.

For K training batches (not augmented, BatchNorm with batch statistics as in a training step,
running statistics left alone) M is computed twice from the same controls: in strict float32
(TF32 off) and under bfloat16 autocast (``--precision bf16``) or with TF32 tensor cores
(``--precision tf32``, torch's ``allow_tf32`` for matrix products and cuDNN: what ocdl's CUDA
runs use by default, ``run.tf32``; on a CPU it changes nothing). Per control, with
e = M_low − M_fp32 and ‖·‖ the Frobenius norm:

* ``per-batch``: mean over batches of ‖e‖ / ‖M‖, the error of one step's M;
* ``e shrink``: ‖mean e‖ / mean ‖e‖ — 1/√K if the errors are independent from batch to batch
  (noise that the running average M̄ of E-MSA averages away), 1 if they are a bias;
* ``M shrink``: ‖mean M‖ / mean ‖M‖, the same for M itself (near 1/√K: M is mostly batch noise);
* ``bias/signal``: ‖mean e‖ / ‖mean M‖, the error left in the K-batch average of M.

    python tools/amp_error.py RUN [--precision bf16|tf32] [--batches 25] [--device cpu]

It needs a finished run folder (its ``controls.pt``, or ``best.pt`` with ``--controls best``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


PRECISIONS = ("bf16", "tf32")


def _tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def amp_error(system, batches, precision: str | None = "bf16") -> dict[str, dict[str, float]]:
    """The statistics of the module docstring for every control of ``system`` (weights, and the
    real BatchNorm scales and shifts), over ``batches`` (an iterable of (x, y, …) tuples):
    ``precision`` ``bf16`` or ``tf32`` against strict float32 (None: float32 against itself)."""
    if precision not in PRECISIONS + (None,):
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")

    def grads(x: torch.Tensor, y: torch.Tensor, low: bool):
        system.autocast = torch.bfloat16 if low and precision == "bf16" else None
        _tf32(low and precision == "tf32")
        states = system.forward(x, train=True, update_stats=False)
        return system.costates(states, y, need_p=False).M

    saved = system.autocast
    saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    sum_e: dict[str, torch.Tensor] = {}
    sum_m: dict[str, torch.Tensor] = {}
    norm_e: dict[str, float] = {}
    norm_m: dict[str, float] = {}
    k = 0
    try:
        for batch in batches:
            x, y = batch[0], batch[1]
            ref, low = grads(x, y, False), grads(x, y, True)
            for n, m in ref.items():
                e = low[n] - m
                sum_e[n] = sum_e.get(n, 0) + e
                sum_m[n] = sum_m.get(n, 0) + m
                norm_e[n] = norm_e.get(n, 0.0) + e.norm().item()
                norm_m[n] = norm_m.get(n, 0.0) + m.norm().item()
            k += 1
    finally:
        system.autocast = saved
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32
    if k == 0:
        raise ValueError("no batches given")
    out = {}
    for n in sum_e:
        me, mm = sum_e[n].norm().item() / k, sum_m[n].norm().item() / k
        out[n] = {"per-batch": norm_e[n] / max(norm_m[n], 1e-30),
                  "e shrink": me / max(norm_e[n] / k, 1e-30),
                  "M shrink": mm / max(norm_m[n] / k, 1e-30),
                  "bias/signal": me / max(mm, 1e-30)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("--precision", default="bf16", choices=PRECISIONS,
                    help="bf16 autocast (default) or TF32 tensor cores, against float32")
    ap.add_argument("--batches", type=int, default=25, help="training batches K (default 25)")
    ap.add_argument("--controls", default="auto", choices=["auto", "final", "best"],
                    help="which of the run's controls (as for ocdl evaluate)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.batches < 1:
        ap.error("--batches must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from itertools import islice

    from ocdl.api import load_system
    from ocdl.errors import OcdlError
    try:
        system, feeders = load_system(args.run, controls=args.controls, device=args.device)
    except OcdlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = amp_error(system, islice(iter(feeders.train), args.batches), args.precision)
    what = "bf16 autocast" if args.precision == "bf16" else "TF32"
    print(f"M under {what} against float32 on {args.device}, {args.batches} training batches of "
          f"{args.run} (1/sqrt(K) = {args.batches ** -0.5:.3f})")
    cols = ["per-batch", "e shrink", "M shrink", "bias/signal"]
    width = max(len(n) for n in rows)
    print(f"| {'control'.ljust(width)} | " + " | ".join(cols) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(c) + 2) for c in cols) + "|")
    for n, r in rows.items():
        print(f"| {n.ljust(width)} | " + " | ".join(f"{r[c]:.3f}".rjust(len(c)) for c in cols)
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
