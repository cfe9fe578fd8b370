"""Image augmentation on the device, for a whole batch at once.

* random crop with zero padding p: pad each image with p zero pixels on every side and cut an
  ``H×W`` window at a random offset (dy, dx) ∈ {0..2p}², i.e.
  ``out[c, i, j] = img[c, i + dy − p, j + dx − p]`` (0 outside the image);
* horizontal flip: ``out[c, i, j] = out[c, i, W − 1 − j]`` with probability ½;
* cutout of side s (DeVries & Taylor 2017), after the crop and flip: a centre (cy, cx) uniform
  over the ``H×W`` pixels and ``out[c, i, j] = 0`` for cy − ⌊s/2⌋ ≤ i < cy − ⌊s/2⌋ + s and the
  same in j, i.e. an s×s square clipped at the border (so near a border less than s² pixels).

Crop and flip are one ``gather`` over the flattened pixels of the batch and cutout one
``masked_fill`` (no per-sample Python), done on the ``uint8`` pixels before conversion to float,
so the padding and the cut square are black (0, which ``preprocess: scale`` keeps at 0) as in the
usual pipelines. The random offsets, flips and centres are drawn by the caller (the feeder draws
them per epoch from a seeded generator, so augmented epochs are reproducible and resumable).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError


@dataclass(frozen=True)
class Augment:
    """Augmentation settings: ``crop`` = zero padding p of the random crop (0: none),
    ``flip`` = random horizontal flips, ``cutout`` = side s of the cut-out square (0: none)."""

    crop: int = 0
    flip: bool = False
    cutout: int = 0

    KEYS = ("crop", "flip", "cutout")

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.flip or self.cutout > 0

    @classmethod
    def from_any(cls, aug: "Augment | dict[str, Any] | None") -> "Augment":
        """Accept an :class:`Augment`, a ``{crop: p, flip: bool, cutout: s}`` mapping, or
        ``None``."""
        if aug is None:
            return cls()
        if isinstance(aug, Augment):
            return aug
        if isinstance(aug, dict):
            unknown = set(aug) - set(cls.KEYS)
            if unknown:
                raise DataError(f"unknown augmentation {sorted(unknown)}; allowed: "
                                + ", ".join(cls.KEYS))
            return cls(crop=int(aug.get("crop", 0) or 0), flip=bool(aug.get("flip", False)),
                       cutout=int(aug.get("cutout", 0) or 0))
        raise DataError(f"augment must be a mapping like {{crop: 4, flip: true}}, got {aug!r}")


@dataclass(frozen=True)
class Draws:
    """The random draws of an epoch's augmentation, one row per sample: crop ``offsets``
    ``(n, 2)`` in ``0..2p``, ``flips`` ``(n,)``, cutout ``centres`` ``(n, 2)`` (``None``
    without cutout)."""

    offsets: torch.Tensor
    flips: torch.Tensor
    centres: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Draws":
        return Draws(*(None if t is None else t.to(device, non_blocking=True)
                       for t in (self.offsets, self.flips, self.centres)))

    def __getitem__(self, rows: slice) -> "Draws":
        return Draws(*(None if t is None else t[rows]
                       for t in (self.offsets, self.flips, self.centres)))


def draw(n: int, aug: Augment, generator: torch.Generator,
         size: tuple[int, int] | None = None) -> Draws:
    """Draw the augmentation of ``n`` samples on the CPU; cutout needs the image ``size``
    ``(H, W)``. The crop and flip draws come first and do not depend on ``cutout``, so adding
    cutout keeps an epoch's crops and flips."""
    if aug.crop > 0:
        offsets = torch.randint(0, 2 * aug.crop + 1, (n, 2), generator=generator)
    else:
        offsets = torch.zeros(n, 2, dtype=torch.int64)
    if aug.flip:
        flips = torch.rand(n, generator=generator) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool)
    centres = None
    if aug.cutout > 0:
        if size is None:
            raise DataError("cutout needs the image size (H, W) to draw its centres")
        h, w = size
        centres = torch.stack([torch.randint(0, h, (n,), generator=generator),
                               torch.randint(0, w, (n,), generator=generator)], dim=1)
    return Draws(offsets, flips, centres)


def apply(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int,
          centres: torch.Tensor | None = None, cutout: int = 0) -> torch.Tensor:
    """Crop (with zero padding ``pad``) at ``offsets``, flip where ``flips``, then zero a
    ``cutout``-sided square around ``centres`` (if given), for a batch ``x`` of shape
    ``B, C, H, W`` (any dtype, any device; the draws on its device)."""
    if x.ndim != 4:
        raise DataError(f"augmentation needs images B×C×H×W, got shape {tuple(x.shape)}")
    h, w = x.shape[2:]
    i = torch.arange(h, device=x.device)
    j = torch.arange(w, device=x.device)
    out = _crop_flip(x, offsets, flips, pad, i, j)
    if centres is not None and cutout > 0:
        top = centres[:, 0:1] - cutout // 2                               # (B, 1)
        left = centres[:, 1:2] - cutout // 2
        in_rows = (i >= top) & (i < top + cutout)                           # (B, H)
        in_cols = (j >= left) & (j < left + cutout)                         # (B, W)
        out = out.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)
    return out


def _crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int,
               i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """The crop and flip of :func:`apply`, one gather (``i``, ``j``: arange(H), arange(W))."""
    b, c, h, w = x.shape
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
