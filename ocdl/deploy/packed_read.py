"""Read an ocdl packed file (docs/packed-format.md) with every length and offset checked
against the file before it is used; never unpickles. A foreign, damaged or truncated file is a
one-line :class:`~ocdl.errors.PackedFileError`.

:func:`read_packed` checks the preamble, the header and the table (types, encodings, levels,
each tensor's payload length against its shape and each payload inside the file) and decodes
nothing; :func:`decode` turns one checked entry into an array; :func:`load` compiles the spec of
the header and loads the tensors into it, each checked against the compiled shape first (so a
table cannot make it allocate more than the spec's own network)."""
from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OcdlError, PackedFileError
from .packed_codec import (ENCODINGS, INDEX_DTYPES, MAGIC, MAX_LEVELS, PREAMBLE, RAW, VERSION,
                           code_bits, packed_bytes, unpack_codes)

#: the largest header this reader accepts (a spec and a table; real ones are kilobytes)
MAX_HEADER = 16 << 20
MAX_RANK = 8


@dataclasses.dataclass
class Packed:
    """A checked packed file: its header fields and the data section (not yet decoded)."""

    path: Path
    spec_text: str
    source: str
    controls: str
    tensors: list[dict[str, Any]]
    data: memoryview


def _bad(path: Path, what: str) -> PackedFileError:
    return PackedFileError(f"{path}: not a readable ocdl packed file ({what}); export it again "
                           "with ocdl export --format packed")


def read_packed(path: str | Path) -> Packed:
    """The checked header of the packed file at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PackedFileError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_packed(raw, path)


def parse_packed(raw: bytes, path: Path = Path("<bytes>")) -> Packed:
    """:func:`read_packed` on the bytes ``raw`` of a file named ``path``."""
    if len(raw) < PREAMBLE or raw[:8] != MAGIC:
        raise PackedFileError(f"{path}: not an ocdl packed file (it does not start with "
                              f"{MAGIC.decode()}); give a file written by ocdl export "
                              "--format packed")
    version, hlen = struct.unpack_from("<II", raw, 8)
    if version != VERSION:
        raise PackedFileError(f"{path}: packed format version {version}; this ocdl reads "
                              f"version {VERSION} (upgrade ocdl, or export it again)")
    if hlen > len(raw) - PREAMBLE or hlen > MAX_HEADER:
        raise _bad(path, f"header of {hlen} bytes, the file has {len(raw) - PREAMBLE} after "
                         "its preamble: truncated")
    try:
        header = json.loads(raw[PREAMBLE:PREAMBLE + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(path, "its header is not UTF-8 JSON: damaged") from None
    data = memoryview(raw)[PREAMBLE + hlen:]
    if not isinstance(header, dict) or header.get("format") != "ocdl-packed":
        raise _bad(path, "its header is not an ocdl-packed header")
    spec, tensors = header.get("spec"), header.get("tensors")
    if not isinstance(spec, str) or not isinstance(tensors, list):
        raise _bad(path, "its header lacks the spec or the table of tensors")
    names: set[str] = set()
    for i, e in enumerate(tensors):
        _check_entry(path, i, e, len(data), names)
    return Packed(path, spec, str(header.get("source", "")), str(header.get("controls", "")),
                  tensors, data)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_entry(path: Path, i: int, e: Any, size: int, names: set[str]) -> None:
    """Check table entry ``i`` against a data section of ``size`` bytes."""
    if not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in names:
        raise _bad(path, f"tensor #{i} has no name, or a repeated one")
    names.add(e["name"])
    where = f"tensor '{e['name'][:60]}'"
    shape, enc = e.get("shape"), e.get("encoding")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(_int(d) and 0 <= d < 1 << 40 for d in shape)):
        raise _bad(path, f"{where} has no valid shape")
    if e.get("kind") not in ("control", "buffer") or enc not in ENCODINGS:
        raise _bad(path, f"{where} has an unknown kind or encoding {str(enc)[:20]!r}")
    off, length = e.get("offset"), e.get("length")
    if not (_int(off) and _int(length) and 0 <= off and 0 <= length and off + length <= size):
        raise _bad(path, f"{where} lies outside the file (offset {str(off)[:20]}, length "
                         f"{str(length)[:20]}, {size} data bytes): truncated")
    n = math.prod(shape)
    if enc in RAW:
        expected = n * np.dtype(RAW[enc]).itemsize
    else:
        levels = e.get("levels")
        if (not isinstance(levels, list) or not 2 <= len(levels) <= MAX_LEVELS
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in levels)
                or any(b <= a for a, b in zip(levels, levels[1:]))):
            raise _bad(path, f"{where} has no valid levels (2 to {MAX_LEVELS} increasing "
                             "finite numbers)")
        if enc == "levels":
            if e.get("bits") != code_bits(len(levels)):
                raise _bad(path, f"{where} has a wrong code width")
            expected = packed_bytes(n, e["bits"])
        else:
            count, ib = e.get("count"), e.get("index_bytes")
            if (0.0 not in levels or e.get("bits") != code_bits(len(levels) - 1)
                    or not _int(count) or not 0 <= count <= n or ib not in INDEX_DTYPES):
                raise _bad(path, f"{where} has a wrong sparse count, index width or levels")
            expected = count * ib + packed_bytes(count, e["bits"])
    if length != expected:
        raise _bad(path, f"{where} has {length} bytes, its shape and encoding need {expected}")


def decode(p: Packed, e: dict[str, Any]) -> np.ndarray:
    """The array of checked entry ``e`` (allocates its shape's size: check the shape first)."""
    shape, enc = tuple(e["shape"]), e["encoding"]
    buf = p.data[e["offset"]:e["offset"] + e["length"]]
    if enc in RAW:
        return np.frombuffer(buf, dtype=RAW[enc]).reshape(shape).copy()
    levels = np.asarray(e["levels"], dtype=np.float32)
    return levels[decode_codes(p, e)].reshape(shape)


def decode_codes(p: Packed, e: dict[str, Any]) -> np.ndarray:
    """The codes into ``e["levels"]`` (uint8, flat) of a checked ``levels`` or ``sparse``
    entry ``e``: entry i is ``levels[codes[i]]``; a byte per entry, a quarter of float32."""
    n, enc = math.prod(e["shape"]), e["encoding"]
    buf = p.data[e["offset"]:e["offset"] + e["length"]]
    levels = e["levels"]
    where = f"tensor '{e['name'][:60]}'"
    if enc == "levels":
        codes = unpack_codes(buf, n, e["bits"])
        if n and codes.max() >= len(levels):
            raise _bad(p.path, f"{where} has a code beyond its {len(levels)} levels")
        return codes.astype(np.uint8)
    count, ib = e["count"], e["index_bytes"]
    gaps = np.frombuffer(buf[:count * ib], dtype=INDEX_DTYPES[ib])
    if count and ((gaps >= n).any() or (gaps[1:] == 0).any()):
        raise _bad(p.path, f"{where} has sparse positions out of order or out of range")
    idx = np.cumsum(gaps.astype(np.int64))  # count · n < 2**63: n is the spec's own size
    if count and idx[-1] >= n:
        raise _bad(p.path, f"{where} has sparse positions beyond its {n} entries")
    zero = levels.index(0.0)
    codes = unpack_codes(buf[count * ib:], count, e["bits"])
    if count and codes.max() >= len(levels) - 1:
        raise _bad(p.path, f"{where} has a code beyond its non-zero levels")
    out = np.full(n, zero, dtype=np.uint8)
    out[idx] = codes + (codes >= zero)  # the non-zero levels' codes, 0 skipped
    return out


def load(path: str | Path, device: Any = "cpu"):
    """The System of the packed file at ``path``: its spec compiled (``ocdl.modelspec.
    loads_spec``) on ``device`` with the file's controls and statistics loaded; its
    ``to_module()`` computes exactly what the exported run's ``load_trained`` module does."""
    import torch
    p = read_packed(path)
    system, own, table = compile_checked(p, device)
    with torch.no_grad():
        for name, t in own.items():
            t.copy_(torch.from_numpy(decode(p, table[name])).to(t.dtype))
    return system


def compile_checked(p: Packed, device: Any = "cpu"):
    """(System, its tensors by name, the table by name) of the checked file ``p``: the spec
    compiled on ``device`` and every table entry's name and shape checked against it (nothing
    decoded yet)."""
    from ..modelspec import loads_spec
    try:
        system = loads_spec(p.spec_text, file=f"{p.path} (spec)").compile(device=device)
    except OcdlError as e:
        raise _bad(p.path, f"its spec does not compile: {str(e)[:200]}") from None
    own = {n: t for n, t in system.theta.items()}
    for st in system.all_stages():
        own.update({f"{st.name}.{k}": v for k, v in st.buffers.items()})
    table = {e["name"]: e for e in p.tensors}
    if set(table) != set(own):
        diff = sorted(set(table) ^ set(own))[:4]
        raise _bad(p.path, f"its tensors do not match its spec (differ in {', '.join(diff)})")
    for name, t in own.items():
        if tuple(table[name]["shape"]) != tuple(t.shape):
            raise _bad(p.path, f"tensor '{name}' has shape {table[name]['shape']}, its spec "
                               f"says {list(t.shape)}")
    return system, own, table
