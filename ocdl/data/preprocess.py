"""Turning stored samples into network inputs: scaling, per-channel standardisation, flattening.

Samples are stored as ``uint8`` pixels v ∈ {0..255} (or as float features). A batch becomes

* ``scale``:       x = v / 255                      (the paper's inputs in [0, 1]);
* ``standardize``: x = (v / 255 − μ_c) / σ_c        (μ, σ per channel, from the train split);
* ``none``:        x = v                            (as float).

Float-valued data are not divided by 255 (they are taken as already scaled), and for vector data
(``N×D``) each feature is its own "channel". The map is one fused multiply-add per element,
``x = v·a_c + b_c``, applied on the device.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import DataError

PREPROCESS = ("scale", "standardize", "none")


def channel_stats(x: torch.Tensor, *, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of samples ``x`` (``N,C,H,W`` or ``N,D``: per feature),
    in scaled units (``uint8`` divided by 255). Exact for ``uint8`` (a histogram per channel)."""
    n = x.shape[0]
    if n == 0:
        raise DataError("cannot compute standardisation statistics of an empty split")
    channels = x.shape[1]
    if x.dtype == torch.uint8:
        hist = torch.zeros(channels, 256, dtype=torch.float64)
        step = max(chunk, (1 << 26) // max(1, x[0].numel()))
        for i in range(0, n, step):
            xb = x[i:i + step].to("cpu").reshape(-1, channels, x[0].numel() // channels)
            for c in range(channels):
                hist[c] += torch.bincount(xb[:, c].reshape(-1), minlength=256).double()
        v = torch.arange(256, dtype=torch.float64) / 255.0
        cnt = hist.sum(1)
        mean = (hist * v).sum(1) / cnt
        var = (hist * v * v).sum(1) / cnt - mean * mean
    else:
        s = torch.zeros(channels, dtype=torch.float64)
        s2 = torch.zeros(channels, dtype=torch.float64)
        cnt = 0
        for i in range(0, n, chunk):
            xb = x[i:i + chunk].to("cpu", torch.float64)
            flat = xb.reshape(xb.shape[0], channels, -1)
            s += flat.sum((0, 2))
            s2 += (flat * flat).sum((0, 2))
            cnt += flat.shape[0] * flat.shape[2]
        mean = s / cnt
        var = s2 / cnt - mean * mean
    return mean.float(), var.clamp_min(0).sqrt().float()


def affine(preprocess: str, *, is_uint8: bool, channels: int,
           mean: Sequence[float] | torch.Tensor | None = None,
           std: Sequence[float] | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(a, b)`` with ``x = v·a + b`` for the given preprocessing."""
    if preprocess not in PREPROCESS:
        raise DataError(f"unknown preprocess '{preprocess}'; choose one of {', '.join(PREPROCESS)}")
    unit = 1.0 / 255.0 if is_uint8 else 1.0
    if preprocess == "none":
        return torch.ones(channels), torch.zeros(channels)
    if preprocess == "scale":
        return torch.full((channels,), unit), torch.zeros(channels)
    if mean is None or std is None:
        raise DataError("preprocess 'standardize' needs the channel mean and std")
    m = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    if m.numel() == 1:
        m, s = m.expand(channels), s.expand(channels)
    if m.numel() != channels or s.numel() != channels:
        raise DataError(f"standardize: got {m.numel()} means and {s.numel()} stds for "
                        f"{channels} channels")
    s = torch.where(s > 1e-12, s, torch.ones_like(s))  # constant channels: only centre them
    return (unit / s).float(), (-m / s).float()
