"""The network of a packed file as an ``nn.Module`` whose discrete weights stay packed
(:func:`load_packed_module`): each discrete dense/conv2d stage a :mod:`ocdl.deploy.
packed_layers` layer with its batchnorm folded in (:mod:`ocdl.deploy.fold`), every other
stage as ``System.to_module`` makes it.

The kernel of each packed layer (:mod:`ocdl.deploy.packed_kernels`) is measured, not guessed:
every kernel that applies to its levels and holds W in no more memory than ``lut`` (so csr only
for very sparse W: 8 bytes a non-zero against 2 bits a weight) is timed on a random batch of
``tune_batch`` inputs, and the fastest kept; the times and the choice show in the module's repr.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DeployError
from . import packed_kernels as pk
from .packed_codec import code_bits
from .fold import ScaleShift, _bare, fold_pairs, scale_shift
from .packed_layers import PackedConv2d, PackedLayer, PackedLinear

#: the float block of W unpacked at once (bytes) unless told otherwise
BLOCK_BYTES = 4 << 20


def load_packed_module(path: str | Path, *, kernel: str = "auto", block_bytes: int = BLOCK_BYTES,
                       tune_batch: int = 8) -> nn.Module:
    """The module (CPU, float32, eval mode) of the packed file at ``path`` with its discrete
    dense/conv2d weights packed and BatchNorm folded (module docstring). ``kernel``: ``auto``
    (measure per layer) or one of ``lut``, ``sign``, ``pn``, ``csr`` for every layer it applies
    to (``lut`` for the others); ``block_bytes``: the most float bytes of W unpacked at once."""
    from ..to_torch import _layer, assemble
    from .packed_read import compile_checked, decode, decode_codes, read_packed
    if kernel != "auto" and kernel not in pk.KERNELS:
        raise DeployError(f"unknown kernel '{str(kernel)[:20]}'; choose auto or one of "
                          f"{', '.join(pk.KERNELS)}")
    p = read_packed(path)
    system, own, table = compile_checked(p, "cpu")
    packed = {st.name: table[st.controls["weight"]] for st in system.all_stages()
              if st.op.name in ("dense", "conv2d") and not st.children
              and table[st.controls["weight"]]["encoding"] in ("levels", "sparse")}
    weights = {e["name"] for e in packed.values()}
    with torch.no_grad():
        for name, t in own.items():
            if name not in weights:
                t.copy_(torch.from_numpy(decode(p, table[name])).to(t.dtype))
        for name in weights:  # no float copy of a packed W is kept
            system.theta[name] = torch.empty(0)
    pairs = fold_pairs(system)
    folded_bn = {bn.name for name, bn in pairs.items()}
    layers: dict[str, nn.Module] = {}
    for st in system.all_stages():
        if st.children:
            continue
        if st.name in packed:
            layers[st.name] = _packed_layer(system, st, pairs.get(st.name),
                                            decode_codes(p, packed[st.name]), packed[st.name],
                                            kernel, block_bytes, tune_batch)
        elif st.name in pairs:
            layers[st.name] = ScaleShift(_bare(system, st), *scale_shift(system, st,
                                                                         pairs[st.name]))
        elif st.name in folded_bn:
            layers[st.name] = nn.Identity()
        else:
            layers[st.name] = _layer(system, st)
    return assemble(system, layers)


def _packed_layer(system: Any, st: Any, bn: Any, codes: np.ndarray, entry: dict[str, Any],
                  kernel: str, block_bytes: int, tune_batch: int) -> PackedLayer:
    shape = entry["shape"]
    rows, cols = shape[0], math.prod(shape[1:])
    codes = codes.reshape(rows, cols)
    levels = tuple(float(v) for v in entry["levels"])
    bits = code_bits(len(levels))
    if bn is not None:
        s, c = scale_shift(system, st, bn)
    else:
        s, c = None, (system.theta[st.controls["bias"]].detach().clone()
                      if "bias" in st.controls else None)
    block_rows = min(rows, max(1, block_bytes // (4 * cols)))

    def build(name: str) -> PackedLayer:
        k = pk.make(name, codes, levels, bits, system.dtype)
        if st.op.name == "dense":
            return PackedLinear(k, s, c, block_rows)
        p = st.params
        return PackedConv2d(k, s, c, block_rows, shape[1], tuple(shape[2:]),
                            _pair(p["stride"]), _pair(p["padding"]))

    usable = pk.applicable(levels)
    if kernel != "auto":
        return build(kernel if kernel in usable else "lut")
    lut = build("lut")
    bound = pk.nbytes(lut.kernel)
    x = torch.randn(tune_batch, *st.in_shapes[0], dtype=system.dtype,
                    generator=torch.Generator().manual_seed(0))
    best, timings, skipped = lut, {"lut": _time(lut, x)}, []
    for name in usable[1:]:
        if name == "csr" and _csr_bytes(codes, levels, rows) > bound:
            skipped.append("csr: more memory than lut")
            continue
        layer = build(name)
        timings[name] = _time(layer, x)
        if timings[name] < timings[best.kernel.name]:
            best = layer
    best.timings = timings
    best.note = "; ".join(skipped)
    return best


def _csr_bytes(codes: np.ndarray, levels: tuple[float, ...], rows: int) -> int:
    nnz = int(np.count_nonzero(codes != levels.index(0.0)))
    return 8 * nnz + 4 * (rows + 1)


def _pair(v: Any) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _time(layer: nn.Module, x: torch.Tensor, reps: int = 3) -> float:
    """The median seconds of ``layer(x)`` over ``reps`` calls after one to warm up."""
    times = []
    with torch.no_grad():
        layer(x)
        for _ in range(reps):
            t0 = time.perf_counter()
            layer(x)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def choices(module: nn.Module) -> dict[str, str]:
    """Packed layer name → its kernel, for a module of :func:`load_packed_module`."""
    return {name: m.kernel.name for name, m in module.named_modules()
            if isinstance(m, PackedLayer)}
