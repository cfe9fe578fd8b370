"""The official CIFAR-10 python release (``cifar-10-batches-py``, or its ``.tar.gz``).

Five training batches ``data_batch_1..5`` and ``test_batch``, each a pickled dict with
``b"data"`` (10000×3072 uint8, channel-planar R, G, B rows of 32×32) and ``b"labels"``, plus
``batches.meta`` with ``b"label_names"``. The pickles are read with a restricted unpickler that
only rebuilds numpy arrays, so a tampered file cannot run code.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .types import RawData

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure means a bad file
        raise DataError(f"{where}: not a readable CIFAR batch ({type(e).__name__}: {e}); the file"
                        " is truncated or corrupt — delete it and fetch it again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(obj).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    if "data" not in d or ("labels" not in d and "fine_labels" not in d):
        raise DataError(f"{where}: CIFAR batch without 'data' and 'labels'")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: expected data N×3072 and N labels, got {x.shape} and {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def _assemble(read: dict[str, bytes], where: str) -> RawData:
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in read]
    if missing:
        raise DataError(f"{where}: CIFAR python batches incomplete, missing {', '.join(missing)}")
    parts = [_batch(read[n], f"{where}/{n}") for n in TRAIN_BATCHES]
    x_test, y_test = _batch(read[TEST_BATCH], f"{where}/{TEST_BATCH}")
    classes: list[str] | None = None
    if META in read:
        meta = _unpickle(read[META], f"{where}/{META}")
        names = meta.get("label_names")
        if names is not None:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if classes is None:
        classes = [str(i) for i in range(int(max(p[1].max() for p in parts)) + 1)]
    return RawData(x_train=np.concatenate([p[0] for p in parts]),
                   y_train=np.concatenate([p[1] for p in parts]),
                   x_test=x_test, y_test=y_test, classes=classes, format="cifar-python")


def is_cifar_dir(path: Path) -> bool:
    """True if ``path`` holds the python batches (``data_batch_1`` … ``test_batch``)."""
    return (Path(path) / TRAIN_BATCHES[0]).is_file() and (Path(path) / TEST_BATCH).is_file()


def load_cifar_dir(path: Path) -> RawData:
    """Load ``cifar-10-batches-py`` from a folder."""
    path = Path(path)
    read = {n: (path / n).read_bytes() for n in (*TRAIN_BATCHES, TEST_BATCH, META)
            if (path / n).is_file()}
    return _assemble(read, str(path))


def tar_has_cifar_batches(names: list[str]) -> bool:
    """True if a tar's member names include the python batches."""
    return any(n.rsplit("/", 1)[-1] == TRAIN_BATCHES[0] for n in names)


def load_cifar_tar(path: Path) -> RawData:
    """Load the python batches straight from ``cifar-10-python.tar.gz`` (no extraction)."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    read: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted:
                    f = tf.extractfile(m)
                    if f is not None:
                        read[base] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: damaged tar archive ({e}); it is truncated or corrupt — delete"
                        " it and fetch it again") from None
    return _assemble(read, str(path))
