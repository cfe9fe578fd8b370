"""Products with a discrete matrix kept packed: W x for W ∈ levels^{rows×cols} held as bit
codes, unpacked a block of rows at a time (never the whole float matrix of a big layer).

Each kernel holds W in one form (uint8 buffers, or CSR index buffers); the layers of
:mod:`ocdl.deploy.packed_layers` take the float rows r0..r1 of its planes (``blocks``) and
combine their products:

- lut: codes of w = 1, 2, 4 or 8 bits (w the power of 2 ≥ ⌈log2 K⌉; w/8 bytes a weight);
  one product with the block levels[c] (a table lookup turns each byte into 8/w levels).
- sign: K = 2 levels a < b, the bit-plane B (1/8 byte a weight); W = a + (b − a)·B, so
  W x = (b − a)·(B x) + a·Σx, for ±1: 2·(B x) − Σx.
- pn: K = 3 levels l₋ < 0 < l₊, the masks P = [W = l₊] and N = [W = l₋] (2/8 byte a
  weight); W x = l₊·(P x) + l₋·(N x), for {−1, 0, 1}: P x − N x.
- csr: 0 a level, the non-zeros as torch.sparse CSR (int32 indices, values in the compute
  dtype: 8 bytes a non-zero + 4 a row); the sparse product.

Rows are padded to whole bytes. The byte → levels tables are shared constants (one per level
set, code width, dtype and device), not part of any layer.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("lut", "sign", "pn", "csr")


def applicable(levels: tuple[float, ...]) -> list[str]:
    """The kernels that can hold a matrix of ``levels``."""
    out = ["lut"]
    if len(levels) == 2:
        out.append("sign")
    if len(levels) == 3 and levels[0] < 0.0 == levels[1] < levels[2]:
        out.append("pn")
    if 0.0 in levels:
        out.append("csr")
    return out


def width(bits: int) -> int:
    """Code width per byte-aligned slot: the power of 2 ≥ ``bits`` (1, 2, 4 or 8)."""
    return next(w for w in (1, 2, 4, 8) if w >= bits)


def pack_rows(codes: np.ndarray, w: int) -> np.ndarray:
    """Codes (uint8, rows × cols, each < 2**w) packed LSB-first, 8/w per byte, each row padded
    to whole bytes: uint8 rows × ⌈cols·w/8⌉."""
    per = 8 // w
    rows, cols = codes.shape
    nb = -(-cols // per)
    padded = np.zeros((rows, nb * per), dtype=np.uint8)
    padded[:, :cols] = codes
    parts = padded.reshape(rows, nb, per).astype(np.uint8)
    out = np.zeros((rows, nb), dtype=np.uint8)
    for k in range(per):
        out |= parts[:, :, k] << np.uint8(k * w)
    return out


@functools.lru_cache(maxsize=64)
def table(values: tuple[float, ...], w: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """byte → the 8/w values[code] it holds (codes beyond ``values`` give 0): 256 × 8/w."""
    per = 8 // w
    b = np.arange(256, dtype=np.int64)[:, None] >> (np.arange(per) * w) & ((1 << w) - 1)
    v = np.zeros(1 << w, dtype=np.float64)
    v[:len(values)] = values
    return torch.tensor(v[b], dtype=dtype, device=device)


class Kernel(nn.Module):
    """A discrete matrix W (rows × cols) in packed form; ``block(r0, r1)`` its float rows."""

    name = ""

    def __init__(self, rows: int, cols: int, levels: tuple[float, ...]):
        super().__init__()
        self.rows, self.cols, self.levels = rows, cols, tuple(float(v) for v in levels)

    def extra_repr(self) -> str:
        return f"{self.name}, {self.rows}×{self.cols}, levels={list(self.levels)}"


class Planes(Kernel):
    """Byte-packed code planes; ``planes[i]`` is decoded through ``values[i]``
    (lut: one plane of w-bit codes into the levels; sign: B into {0, 1}; pn: P, N into {0, 1})."""

    def __init__(self, name: str, codes: np.ndarray, levels: tuple[float, ...], w: int):
        super().__init__(codes.shape[0], codes.shape[1], levels)
        self.name, self.w = name, w
        if name == "lut":
            self.values = [self.levels]
            planes = [codes]
        elif name == "sign":
            self.values = [(0.0, 1.0)]
            planes = [codes == 1]
        else:  # pn: codes 2 (l₊) and 0 (l₋)
            self.values = [(0.0, 1.0), (0.0, 1.0)]
            planes = [codes == 2, codes == 0]
        for i, p in enumerate(planes):
            self.register_buffer(f"plane{i}", torch.from_numpy(pack_rows(p.astype(np.uint8), w)))

    def blocks(self, r0: int, r1: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """The float rows r0..r1 of each plane (decoded through its values)."""
        out = []
        for i, values in enumerate(self.values):
            packed = getattr(self, f"plane{i}")[r0:r1]
            tab = table(values, self.w, dtype, str(packed.device))
            out.append(F.embedding(packed.int(), tab).reshape(r1 - r0, -1)[:, :self.cols])
        return out


class Csr(Kernel):
    """W as torch.sparse CSR: crow (rows + 1), col and the non-zero values."""

    name = "csr"

    def __init__(self, codes: np.ndarray, levels: tuple[float, ...], dtype: torch.dtype):
        super().__init__(codes.shape[0], codes.shape[1], levels)
        zero = self.levels.index(0.0)
        rows_nz, cols_nz = np.nonzero(codes != zero)
        crow = np.zeros(self.rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows_nz, minlength=self.rows), out=crow[1:])
        lv = np.asarray(self.levels, dtype=np.float64)
        self.register_buffer("crow", torch.from_numpy(crow.astype(np.int32)))
        self.register_buffer("col", torch.from_numpy(cols_nz.astype(np.int32)))
        self.register_buffer("values", torch.tensor(lv[codes[rows_nz, cols_nz]], dtype=dtype))

        self._matrix: tuple[int, torch.Tensor] | None = None

    def matrix(self) -> torch.Tensor:
        """The sparse CSR tensor over the buffers (no copy; made again when they change)."""
        key = self.values.data_ptr()
        if self._matrix is None or self._matrix[0] != key:
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                m = torch.sparse_csr_tensor(self.crow, self.col, self.values,
                                            (self.rows, self.cols), check_invariants=False)
            self._matrix = (key, m)
        return self._matrix[1]


def make(name: str, codes: np.ndarray, levels: tuple[float, ...], bits: int,
         dtype: torch.dtype) -> Kernel:
    """The kernel ``name`` holding the matrix of ``codes`` (uint8 rows × cols into
    ``levels``, ``bits`` bits each)."""
    if name == "csr":
        return Csr(codes, levels, dtype)
    return Planes(name, codes, levels, width(bits) if name == "lut" else 1)


def nbytes(module: nn.Module) -> int:
    """Bytes held by ``module``'s parameters and buffers."""
    return sum(t.numel() * t.element_size()
               for t in [*module.parameters(), *module.buffers()])
