#!/usr/bin/env python3
"""Build ``ocdl/data/embedded/mnist-subset.npz``: a small, class-balanced subset of real MNIST.

Takes ``--train`` images from the official training set and ``--test`` from the official test
set, the same number from each digit, chosen by a SplitMix64 hash of the index (seed 0, see
:mod:`ocdl.data.splits`) and kept in the official order. The IDX files are checked against the
official SHA-256 first. The archive is written byte-for-byte reproducibly (fixed zip timestamps,
deflate level 9), so rebuilding gives the same file.

Keys: ``x_train`` (N×28×28 uint8), ``y_train`` (N int64), ``x_test``, ``y_test``, ``classes``,
and ``train_index``/``test_index`` (int32 positions in the official sets, for provenance).

    python tools/make_embedded_subset.py [--source DIR] [--out FILE]

``--source`` defaults to the MNIST found on ocdl's search path (``$OCDL_DATA`` …).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocdl.data.idx import find_idx_files, load_idx  # noqa: E402
from ocdl.data.registry import DATASETS  # noqa: E402
from ocdl.data.search import find_named  # noqa: E402
from ocdl.data.splits import seeded_order  # noqa: E402

SALT_TRAIN, SALT_TEST = 0xE3B, 0x7E5


def balanced(y: np.ndarray, total: int, salt: int) -> np.ndarray:
    """``total`` indices, ``total // K`` per class, seeded; sorted (official order)."""
    classes = np.unique(y)
    per = total // len(classes)
    order = seeded_order(len(y), 0, salt)
    picked = []
    for c in classes:
        in_c = order[y[order] == c]
        if len(in_c) < per:
            raise SystemExit(f"class {c} has only {len(in_c)} samples, need {per}")
        picked.append(in_c[:per])
    return np.sort(np.concatenate(picked))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic ``.npz`` (what ``np.savez_compressed`` writes, minus the timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, help="folder with the four MNIST IDX files")
    ap.add_argument("--out", type=Path, default=ROOT / "ocdl/data/embedded/mnist-subset.npz")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--test", type=int, default=2000)
    args = ap.parse_args(argv)
    if args.source:
        files = find_idx_files(args.source)
        if files is None:
            raise SystemExit(f"{args.source}: no MNIST IDX files there")
    else:
        found = find_named("mnist")
        if found is None:
            raise SystemExit("MNIST not found: pass --source or set OCDL_DATA")
        files = found.files
    raw = load_idx(files, DATASETS["mnist"].sha256)  # checks the official content
    tr = balanced(raw.y_train, args.train, SALT_TRAIN)
    te = balanced(raw.y_test, args.test, SALT_TEST)
    arrays = {
        "x_train": raw.x_train[tr, 0], "y_train": raw.y_train[tr],
        "x_test": raw.x_test[te, 0], "y_test": raw.y_test[te],
        "classes": np.array([str(i) for i in range(10)]),
        "train_index": tr.astype(np.int32), "test_index": te.astype(np.int32),
    }
    data = write_npz(args.out, arrays)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
