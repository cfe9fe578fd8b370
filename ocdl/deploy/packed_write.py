"""Write a trained network as an ocdl packed file (docs/packed-format.md): the spec and a
table of tensors in a JSON header, then the tensors, discrete controls as codes of
⌈log2 K⌉ bits or as sparse (index, code) pairs, whichever is smaller, everything else in
float32 (or float16 on request). numpy and struct only."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .packed_codec import (MAGIC, RAW, VERSION, code_bits, dense_length, index_bytes,
                           INDEX_DTYPES, MAX_LEVELS, pack_codes, sparse_length)
from .source import Trained, write_atomic


def encode(name: str, kind: str, value: np.ndarray, levels: tuple[float, ...] | None,
           real: str) -> tuple[dict[str, Any], bytes]:
    """The table entry (without offset) and payload of one tensor."""
    entry: dict[str, Any] = {"name": name, "kind": kind, "shape": list(value.shape)}
    flat = value.reshape(-1)
    lv = np.asarray(levels, dtype=np.float32) if levels else None
    if lv is not None and len(lv) <= MAX_LEVELS and np.isin(flat, lv).all():
        codes = np.searchsorted(lv, flat)
        entry["levels"] = [float(v) for v in lv]
        dense = dense_length(flat.size, len(lv))
        if 0.0 in entry["levels"]:
            nz = np.flatnonzero(flat)
            gaps = np.diff(nz, prepend=0)  # the first position, then the gaps between them
            ib = index_bytes(int(gaps.max()) + 1 if nz.size else 1)
            if sparse_length(nz.size, ib, len(lv)) < dense:
                zero = entry["levels"].index(0.0)
                nzcodes = codes[nz] - (codes[nz] > zero)
                entry.update(encoding="sparse", count=int(nz.size), index_bytes=ib,
                             bits=code_bits(len(lv) - 1))
                payload = gaps.astype(INDEX_DTYPES[ib]).tobytes() + pack_codes(nzcodes,
                                                                              entry["bits"])
                return entry, payload
        entry.update(encoding="levels", bits=code_bits(len(lv)))
        return entry, pack_codes(codes, entry["bits"])
    enc = "int64" if not np.issubdtype(value.dtype, np.floating) else real
    entry["encoding"] = enc
    return entry, np.ascontiguousarray(flat.astype(RAW[enc])).tobytes()


def pack(tr: Trained, *, float16: bool = False) -> bytes:
    """The packed file of ``tr`` as bytes."""
    system = tr.system
    real = "float16" if float16 else "float32"
    entries, payloads, offset = [], [], 0
    tensors: list[tuple[str, str, Any, Any]] = []
    for c in system.controls:
        levels = c.cset.values if c.cset.discrete else None
        tensors.append((c.name, "control", system.theta[c.name], levels))
    for st in system.all_stages():
        for k, v in st.buffers.items():
            tensors.append((f"{st.name}.{k}", "buffer", v, None))
    for name, kind, t, levels in tensors:
        entry, payload = encode(name, kind, t.detach().cpu().numpy(), levels, real)
        entry.update(offset=offset, length=len(payload))
        offset += len(payload)
        entries.append(entry)
        payloads.append(payload)
    header = json.dumps({"format": "ocdl-packed", "spec": tr.spec_text,
                         "source": tr.run_dir.name, "controls": tr.controls,
                         "tensors": entries}, separators=(",", ":")).encode("utf-8")
    return MAGIC + struct.pack("<II", VERSION, len(header)) + header + b"".join(payloads)


def write_packed(tr: Trained, out: Path, *, float16: bool = False) -> Path:
    """Write ``tr`` as a packed file at ``out`` (atomically)."""
    data = pack(tr, float16=float16)
    write_atomic(out, lambda tmp: Path(tmp).write_bytes(data))
    return out
