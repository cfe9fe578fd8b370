"""Image augmentation on the device, for a whole batch at once.

* random crop with zero padding p: pad each image with p zero pixels on every side and cut an
  ``H×W`` window at a random offset (dy, dx) ∈ {0..2p}², i.e.
  ``out[c, i, j] = img[c, i + dy − p, j + dx − p]`` (0 outside the image);
* horizontal flip: ``out[c, i, j] = out[c, i, W − 1 − j]`` with probability ½.

Both are one ``gather`` over the flattened pixels of the batch (no per-sample Python), done on
the ``uint8`` pixels before conversion to float, so the padding is black as in the usual
pipelines. The random offsets and flips are drawn by the caller (the feeder draws them per epoch
from a seeded generator, so augmented epochs are reproducible and resumable).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError


@dataclass(frozen=True)
class Augment:
    """Augmentation settings: ``crop`` = zero padding p of the random crop (0: none),
    ``flip`` = random horizontal flips."""

    crop: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.flip

    @classmethod
    def from_any(cls, aug: "Augment | dict[str, Any] | None") -> "Augment":
        """Accept an :class:`Augment`, a ``{crop: p, flip: bool}`` mapping, or ``None``."""
        if aug is None:
            return cls()
        if isinstance(aug, Augment):
            return aug
        if isinstance(aug, dict):
            unknown = set(aug) - {"crop", "flip"}
            if unknown:
                raise DataError(f"unknown augmentation {sorted(unknown)}; allowed: crop, flip")
            return cls(crop=int(aug.get("crop", 0) or 0), flip=bool(aug.get("flip", False)))
        raise DataError(f"augment must be a mapping like {{crop: 4, flip: true}}, got {aug!r}")


def draw(n: int, aug: Augment, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw per-sample crop offsets ``(n, 2)`` in ``0..2p`` and flip flags ``(n,)`` on the CPU."""
    if aug.crop > 0:
        offsets = torch.randint(0, 2 * aug.crop + 1, (n, 2), generator=generator)
    else:
        offsets = torch.zeros(n, 2, dtype=torch.int64)
    if aug.flip:
        flips = torch.rand(n, generator=generator) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool)
    return offsets, flips


def apply(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop (with zero padding ``pad``) at ``offsets`` and flip where ``flips``, for a batch
    ``x`` of shape ``B, C, H, W`` (any dtype, any device; ``offsets``/``flips`` on its device)."""
    if x.ndim != 4:
        raise DataError(f"augmentation needs images B×C×H×W, got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    dev = x.device
    i = torch.arange(h, device=dev)
    j = torch.arange(w, device=dev)
    rows = offsets[:, 0:1] + i - pad                                    # (B, H)
    jj = torch.where(flips[:, None], (w - 1) - j, j)                    # (B, W)
    cols = offsets[:, 1:2] + jj - pad                                   # (B, W)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    lin = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]  # (B, H, W)
    out = x.reshape(b, c, h * w).gather(2, lin.reshape(b, 1, h * w).expand(b, c, h * w))
    out = out.reshape(b, c, h, w)
    if pad > 0:
        out = out.masked_fill(~valid[:, None], 0)
    return out
