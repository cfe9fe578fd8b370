"""The IDX format of MNIST and Fashion-MNIST (usually gzip'd).

An IDX file is a big-endian header — two zero bytes, a type code (``0x08`` = uint8), the number
of dimensions d — then d big-endian uint32 sizes, then the payload in row-major order. Images are
magic 2051 (``0x00000803``: uint8, 3-D ``N×28×28``), labels magic 2049 (``0x00000801``: uint8,
1-D ``N``).
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .registry import IDX_FILES
from .types import RawData

_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(buf: bytes, *, where: str = "IDX data") -> np.ndarray:
    """Parse an (uncompressed) IDX buffer into an array of its declared shape and type."""
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _DTYPES:
        magic = int.from_bytes(buf[:4], "big") if len(buf) >= 4 else None
        raise DataError(f"{where}: not an IDX file (magic {magic!r}; expected 2051 for images or"
                        " 2049 for labels)")
    dtype, ndim = _DTYPES[buf[2]], buf[3]
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise DataError(f"{where}: truncated IDX header")
    shape = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - head
    if have != need:
        raise DataError(f"{where}: header says shape {shape} ({need} bytes) but the file has "
                        f"{have} bytes of data; the file is {'truncated' if have < need else 'corrupt'}"
                        " — delete it and fetch it again")
    arr = np.frombuffer(buf, dtype=dtype, count=need // dtype.itemsize, offset=head)
    return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed content of an IDX file (``.gz`` or plain)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        return data
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: damaged gzip file ({e}); it is truncated or corrupt — delete it"
                        " and fetch it again") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def read_idx(path: Path, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file; if ``sha256`` is given, check it against the decompressed content."""
    buf = read_idx_bytes(path)
    if sha256 is not None:
        got = hashlib.sha256(buf).hexdigest()
        if got != sha256:
            raise DataError(f"{path}: content SHA-256 {got[:16]}… does not match the official "
                            f"{sha256[:16]}…; the file is corrupt or from another dataset — "
                            "replace it with the official file")
    return parse_idx(buf, where=str(path))


def _candidates(stem: str) -> list[str]:
    dotted = stem.replace("-idx", ".idx")
    return [stem + ".gz", stem, dotted + ".gz", dotted]


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four MNIST-style IDX files in ``folder`` (or its ``raw/`` subfolder), by role
    (``x_train``, ``y_train``, ``x_test``, ``y_test``), or ``None`` if any is missing.
    Accepts ``.gz`` or plain files, named ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``."""
    for base in (Path(folder), Path(folder) / "raw"):
        found: dict[str, Path] = {}
        for role, stem in IDX_FILES.items():
            for name in _candidates(stem):
                if (base / name).is_file():
                    found[role] = base / name
                    break
        if len(found) == 4:
            return found
    return None


def load_idx(files: dict[str, Path], sha256: dict[str, str] | None = None,
             classes: list[str] | None = None) -> RawData:
    """Load the four IDX files into :class:`RawData`; ``sha256`` maps the official (decompressed)
    file names to their digests and is checked when given."""
    arrays = {}
    for role, path in files.items():
        want = (sha256 or {}).get(IDX_FILES[role])
        arrays[role] = read_idx(path, sha256=want)
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{files[f'x_{part}']}: expected images N×H×W and labels N, got "
                            f"{x.shape} and {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{files[f'x_{part}'].parent}: {part} has {x.shape[0]} images but "
                            f"{y.shape[0]} labels")
        if x.dtype != np.uint8:
            raise DataError(f"{files[f'x_{part}']}: expected uint8 pixels, got {x.dtype}")
    n_cls = int(max(arrays["y_train"].max(initial=0), arrays["y_test"].max(initial=0))) + 1
    return RawData(
        x_train=arrays["x_train"][:, None], y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][:, None], y_test=arrays["y_test"].astype(np.int64),
        classes=list(classes) if classes else [str(i) for i in range(n_cls)], format="idx")


def write_idx(arr: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX (used by tests and tools)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return head + arr.tobytes()
