"""The user's own data as a NumPy ``.npz`` archive.

Expected keys:

* ``x_train``, ``y_train`` — required: samples and integer labels ``0 .. K-1`` (one-hot
  ``N×K`` labels are accepted and turned into indices);
* ``x_test``, ``y_test`` — optional: the test set (without it a fixed 10 % of the training data,
  independent of the seed, becomes the test part);
* ``x_valid``, ``y_valid`` — optional: an official validation set (else one is carved from the
  training data by seed);
* ``classes`` — optional: class names (strings), else ``"0" … "K-1"``;
* ``layout`` — optional: ``"NCHW"`` or ``"NHWC"`` for 4-D images (guessed otherwise: a last axis
  of 1, 3 or 4 means channels-last).

Samples may be ``N×H×W`` (grayscale), ``N×H×W×C`` / ``N×C×H×W`` images or ``N×D`` vectors.
``uint8`` samples are pixels 0..255; integer samples within 0..255 are converted to ``uint8``;
floating-point samples are kept as ``float32`` and taken as already scaled.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .types import RawData

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "x_valid", "y_valid", "classes", "layout")


def _samples(x: np.ndarray, where: str, layout: str | None) -> np.ndarray:
    if x.dtype.kind == "u" and x.dtype.itemsize == 1:
        pass
    elif x.dtype.kind in "iu":
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer samples range {lo}..{hi}; expected pixels 0..255 "
                            "(or store floating-point values)")
        x = x.astype(np.uint8)
    elif x.dtype.kind in "fb":
        x = x.astype(np.float32)
    else:
        raise DataError(f"{where}: samples of dtype {x.dtype} are not numbers")
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if layout is None:
            layout = "NHWC" if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4) else "NCHW"
        if layout.upper() == "NHWC":
            x = x.transpose(0, 3, 1, 2)
        elif layout.upper() != "NCHW":
            raise DataError(f"{where}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
        return np.ascontiguousarray(x)
    raise DataError(f"{where}: samples have shape {x.shape}; expected N×D vectors or N×H×W, "
                    "N×H×W×C, N×C×H×W images")


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{where}: expected {n} labels, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{where}: labels must be integers 0..K-1")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{where}: labels must be integers 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{where}: negative label {int(y.min())}; labels must be 0..K-1")
    return y


def load_npz(path: Path) -> RawData:
    """Load the user's ``.npz`` (see the module docstring for the keys)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({e}); it is truncated or corrupt") from None
    try:
        with z:
            keys = set(z.files)
            if not {"x_train", "y_train"} <= keys:
                raise DataError(f"{path}: needs arrays 'x_train' and 'y_train' (optional: x_test, "
                                f"y_test, x_valid, y_valid, classes); it has {sorted(keys)}")
            layout = str(z["layout"]) if "layout" in keys else None
            parts = {}
            for part in ("train", "test", "valid"):
                if f"x_{part}" in keys or f"y_{part}" in keys:
                    if not {f"x_{part}", f"y_{part}"} <= keys:
                        raise DataError(f"{path}: has only one of x_{part} and y_{part}; give both")
                    x = _samples(z[f"x_{part}"], f"{path}: x_{part}", layout)
                    parts[part] = (x, _labels(z[f"y_{part}"], x.shape[0], f"{path}: y_{part}"))
            classes = [str(c) for c in z["classes"].tolist()] if "classes" in keys else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: damaged .npz ({e}); it is truncated or corrupt") from None
    shapes = {p: v[0].shape[1:] for p, v in parts.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path}: parts have different sample shapes {shapes}")
    n_cls = int(max(int(v[1].max(initial=0)) for v in parts.values())) + 1
    if classes is None:
        classes = [str(i) for i in range(n_cls)]
    elif len(classes) < n_cls:
        raise DataError(f"{path}: labels go up to {n_cls - 1} but only {len(classes)} class names")
    t, te, va = parts["train"], parts.get("test", (None, None)), parts.get("valid", (None, None))
    return RawData(x_train=t[0], y_train=t[1], x_test=te[0], y_test=te[1], x_valid=va[0],
                   y_valid=va[1], classes=classes, format="npz")
