"""The tensor encodings of the packed format (docs/packed-format.md): codes of ``bits`` bits
packed LSB-first, and the payload lengths that the reader checks before decoding anything.

=========  ==========================================================================
encoding   payload
=========  ==========================================================================
levels     n codes c_i ∈ [0, K) of b = ⌈log2 K⌉ bits each; value_i = levels[c_i]
sparse     count gaps (index_bytes each, unsigned): the first non-zero's flat position,
           then each one's distance from the one before (≥ 1); then count codes of
           b = ⌈log2 (K−1)⌉ bits into the non-zero levels; every other entry is 0
float32    n little-endian IEEE float32
float16    n little-endian IEEE float16
int64      n little-endian int64
=========  ==========================================================================
"""
from __future__ import annotations

import math

import numpy as np

MAGIC = b"OCDLPACK"
VERSION = 1
#: magic, u32 version, u32 header length
PREAMBLE = 16
RAW = {"float32": "<f4", "float16": "<f2", "int64": "<i8"}
ENCODINGS = ("levels", "sparse", *RAW)
INDEX_DTYPES = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}
MAX_LEVELS = 256


def code_bits(k: int) -> int:
    """Bits of a code for one of ``k`` values: ⌈log2 k⌉ (0 for a single value)."""
    return max(k - 1, 0).bit_length()


def packed_bytes(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``codes`` (non-negative integers < 2**bits) as a bit stream, LSB-first."""
    if bits == 0 or codes.size == 0:
        return b""
    c = codes.astype(np.uint8 if bits <= 8 else np.uint32).reshape(-1, 1)
    planes = ((c >> np.arange(bits, dtype=c.dtype)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_codes(data: bytes | memoryview, n: int, bits: int) -> np.ndarray:
    """The ``n`` codes of ``bits`` bits in ``data`` (already checked to hold them); uint8 for
    ``bits`` ≤ 8."""
    if bits == 0:
        return np.zeros(n, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n * bits, bitorder="little")
    if bits == 1:
        return flat
    planes = flat.reshape(n, bits)
    out = np.zeros(n, dtype=np.uint8 if bits <= 8 else np.int64)
    for j in range(bits):  # a byte per code up to 8 bits (the decoders' memory bound)
        out |= planes[:, j].astype(out.dtype) << out.dtype.type(j)
    return out


def index_bytes(numel: int) -> int:
    """The narrowest width (1, 2, 4 or 8 bytes) that holds the numbers < ``numel``."""
    for b in (1, 2, 4):
        if numel <= 1 << (8 * b):
            return b
    return 8


def dense_length(numel: int, levels: int) -> int:
    return packed_bytes(numel, code_bits(levels))


def sparse_length(count: int, index_width: int, levels: int) -> int:
    return count * index_width + packed_bytes(count, code_bits(levels - 1))


def numel(shape: list[int]) -> int:
    return math.prod(shape)
