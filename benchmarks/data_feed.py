#!/usr/bin/env python3
"""Data feeding speed: the ocdl feeder against plain loops, and time to first batch.

For each dataset found (``mnist-subset`` always; ``mnist``, ``fashion-mnist``, ``cifar-10`` when
on the search path — nothing is downloaded):

* batches per second, medians over ``--repeats`` rounds measured side by side in one run (each
  round runs every loader once, so machine noise hits all alike), of
  - ``ocdl``: :class:`ocdl.data.Feeder` (uint8 on the device, seeded permutation, float and
    scaling on the device; ``ocdl+aug``: plus random crop 4 and flip for images);
  - ``plain``: the hand-written loop ``x[perm[i:i+S]].float() / 255`` over a device tensor;
  - ``DataLoader``: ``torch.utils.data.DataLoader(TensorDataset(x, y), shuffle=True)`` (per-sample
    fetching and collation, as in a typical PyTorch script; CPU tensors, moved per batch);
* time to first batch: ``cold`` = parse/decode from the source files into an empty array cache,
  ``warm`` = from the array cache filled by the cold run.

    python benchmarks/data_feed.py [--device cuda] [--repeats 7] [--batches 400]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocdl.data import Feeder, load_dataset  # noqa: E402
from ocdl.data.search import find_named  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rates(makers: dict, n_batches: dict, device: torch.device, repeats: int) -> dict:
    """Median batches/s of each iterator maker over ``repeats``, measured interleaved (one round
    runs every maker once) so that machine noise hits all of them alike."""
    rates: dict[str, list[float]] = {k: [] for k in makers}
    for r in range(repeats + 1):
        for key, make in makers.items():
            it = make(r)
            _sync(device)
            t = time.perf_counter()
            k = 0
            for x, y in it:
                k += 1
                if k >= n_batches[key]:
                    break
            _sync(device)
            if r:  # the first round warms up
                rates[key].append(k / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def _plain(x: torch.Tensor, y: torch.Tensor, bs: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    for i in range(0, x.shape[0], bs):
        idx = perm[i:i + bs]
        yield x[idx].float() / 255, y[idx]


def _dataloader(x: torch.Tensor, y: torch.Tensor, bs: int, device: torch.device):
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs,
                                     shuffle=True)
    for xb, yb in dl:
        yield xb.to(device).float() / 255, yb.to(device)


def throughput(name: str, device: torch.device, bs: int, n_batches: int, repeats: int) -> dict:
    ds = load_dataset(name, download=False, say=None)
    split = ds.train
    n_batches = min(n_batches, len(split) // bs)
    f = Feeder(split, batch_size=bs, device=device, seed=0)
    x_dev, y_dev = split.x.to(device), split.y.to(device)
    makers = {"ocdl": lambda r: f.epoch(r),
              "plain": lambda r: _plain(x_dev, y_dev, bs, r),
              "DataLoader": lambda r: _dataloader(split.x, split.y, bs, device)}
    counts = {"ocdl": n_batches, "plain": n_batches, "DataLoader": max(10, n_batches // 8)}
    if ds.is_image:
        fa = Feeder(split, batch_size=bs, device=device, seed=0, augment={"crop": 4, "flip": True})
        makers["ocdl+aug"] = lambda r: fa.epoch(r)
        counts["ocdl+aug"] = n_batches
    return _rates(makers, counts, device, repeats)


def first_batch(name: str, device: torch.device, bs: int, cache: Path) -> float:
    os.environ["OCDL_CACHE"] = str(cache)
    _sync(device)
    t = time.perf_counter()
    ds = load_dataset(name, download=False, say=None)
    x, _ = next(Feeder(ds.train, batch_size=bs, device=device, seed=0).epoch(0))
    _sync(device)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batches", type=int, default=400, help="batches per measurement")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--datasets", nargs="*",
                    default=["mnist-subset", "mnist", "fashion-mnist", "cifar-10"])
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    names = [n for n in args.datasets if n == "mnist-subset" or find_named(n)]
    skipped = sorted(set(args.datasets) - set(names))
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})"
                                if device.type == "cuda" else f" ({os.cpu_count()} CPUs)")
          + f", torch {torch.__version__}, batch {args.batch_size}, medians of {args.repeats}")
    if skipped:
        print(f"not found (set OCDL_DATA): {', '.join(skipped)}")
    print("\nbatches/s (train split, shuffled, float32 in [0,1])")
    print(f"{'dataset':14} {'ocdl':>9} {'plain':>9} {'ocdl/plain':>10} {'DataLoader':>10} "
          f"{'ocdl/DL':>8} {'ocdl+aug':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OCDL_CACHE"] = str(Path(tmp) / "bench-cache")
        for n in names:
            r = throughput(n, device, args.batch_size, args.batches, args.repeats)
            aug = f"{r['ocdl+aug']:9.0f}" if "ocdl+aug" in r else f"{'-':>9}"
            print(f"{n:14} {r['ocdl']:9.0f} {r['plain']:9.0f} {r['ocdl'] / r['plain']:10.2f} "
                  f"{r['DataLoader']:10.0f} {r['ocdl'] / r['DataLoader']:8.1f} {aug}", flush=True)
        print("\ntime to first batch (load + split + first batch), seconds")
        print(f"{'dataset':14} {'cold':>8} {'warm':>8} {'cold/warm':>9}")
        for n in names:
            cache = Path(tmp) / f"ttfb-{n}"
            cold = first_batch(n, device, args.batch_size, cache)
            warm = statistics.median(first_batch(n, device, args.batch_size, cache)
                                     for _ in range(3))
            print(f"{n:14} {cold:8.3f} {warm:8.3f} {cold / warm:9.1f}", flush=True)
    print("\n(mnist-subset is an embedded .npz: no array cache, so cold == warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
