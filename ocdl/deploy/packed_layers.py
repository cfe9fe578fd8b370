"""Dense and conv2d layers whose discrete weight W stays packed (:mod:`ocdl.deploy.
packed_kernels`), unpacked a block of output units at a time, with BatchNorm folded:

    dense    y = s ⊙ (W x) + c           conv2d    y = s ⊙ (W ⋆ x) + c   (per output channel)

(s, c from :mod:`ocdl.deploy.fold`; without a batchnorm after it, s = 1 and c the bias b or 0).
A block is ``block_rows`` rows of W (output units; output channels of a kernel, each row
C_in·k_h·k_w long). Per kernel, the product of a block:

- lut:  x W_bᵀ (conv: W_b ⋆ x), W_b the block's levels;
- sign: (b − a)·(x B_bᵀ) + a·Σx (conv: (b − a)·(B_b ⋆ x) + a·(1 ⋆ x), 1 the all-ones
  kernel of one output channel, computed once per call);
- pn:   l₊·(x P_bᵀ) + l₋·(x N_bᵀ) (conv: the same with ⋆);
- csr:  the whole sparse product W x (conv: on the im2col patches, ``F.unfold``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .packed_kernels import Csr, Kernel


class PackedLayer(nn.Module):
    """Shared part: the kernel, the per-output scale s (optional) and shift c (optional), the
    block size, and the choice record (``timings``: kernel → seconds per call, measured)."""

    def __init__(self, kernel: Kernel, scale: torch.Tensor | None, shift: torch.Tensor | None,
                 block_rows: int):
        super().__init__()
        self.kernel = kernel
        self.block_rows = max(1, int(block_rows))
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.timings: dict[str, float] = {}
        self.note = ""

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (y.dim() - 2)
        if self.scale is not None:
            y = y * self.scale.view(shape)
        return y + self.shift.view(shape) if self.shift is not None else y

    def combine(self, parts: list[torch.Tensor], base: torch.Tensor | None) -> torch.Tensor:
        """One block's product from the products with its planes (``base``: the sign trick's
        a·Σx, or a·(1 ⋆ x))."""
        k = self.kernel
        if k.name == "lut":
            return parts[0]
        if k.name == "sign":
            a, b = k.levels
            return torch.add(base, parts[0], alpha=b - a) if a != 0.0 else parts[0] * (b - a)
        return parts[0] * k.levels[2] + parts[1] * k.levels[0]

    def extra_repr(self) -> str:
        times = ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in self.timings.items())
        folded = "s ⊙ (W x) + c" if self.scale is not None else "W x + c"
        return (f"kernel={self.kernel.name}, block_rows={self.block_rows}, {folded}"
                + (f", measured [{times}]" if times else "") + (f", {self.note}" if self.note
                                                                 else ""))


class PackedLinear(PackedLayer):
    """y = s ⊙ (W x) + c with W packed (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        if isinstance(k, Csr):
            return self.finish(torch.sparse.mm(k.matrix(), x.t()).t())
        base = None
        if k.name == "sign":
            base = x.sum(1, keepdim=True) * k.levels[0]
        out = []
        for r0 in range(0, k.rows, self.block_rows):
            r1 = min(r0 + self.block_rows, k.rows)
            parts = [x @ w.t() for w in k.blocks(r0, r1, x.dtype)]
            out.append(self.combine(parts, base))
        return self.finish(out[0] if len(out) == 1 else torch.cat(out, 1))


class PackedConv2d(PackedLayer):
    """y = s ⊙ (W ⋆ x) + c with W packed (module docstring); ``kernel_size``, ``stride``,
    ``padding`` as for ``F.conv2d``."""

    def __init__(self, kernel: Kernel, scale, shift, block_rows: int, in_channels: int,
                 kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]):
        super().__init__(kernel, scale, shift, block_rows)
        self.in_channels, self.kernel_size = in_channels, tuple(kernel_size)
        self.stride, self.padding = tuple(stride), tuple(padding)

    def conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w.reshape(w.shape[0], self.in_channels, *self.kernel_size),
                        stride=self.stride, padding=self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        if isinstance(k, Csr):
            n = x.shape[0]
            cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
            h = (x.shape[2] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
            y = torch.sparse.mm(k.matrix(), cols.transpose(0, 1).reshape(k.cols, -1))
            return self.finish(y.reshape(k.rows, n, h, -1).transpose(0, 1))
        base = None
        if k.name == "sign":
            ones = x.new_ones(1, k.cols)
            base = self.conv(x, ones) * k.levels[0]
        out = []
        for r0 in range(0, k.rows, self.block_rows):
            r1 = min(r0 + self.block_rows, k.rows)
            parts = [self.conv(x, w) for w in k.blocks(r0, r1, x.dtype)]
            out.append(self.combine(parts, base))
        return self.finish(out[0] if len(out) == 1 else torch.cat(out, 1))
