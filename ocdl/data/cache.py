"""The user cache: downloaded files and decoded arrays, written atomically.

Location: ``$OCDL_CACHE`` if set, else ``$XDG_CACHE_HOME/ocdl/datasets`` (``~/.cache/ocdl/datasets``).
Downloads go to ``<cache>/<name>/``; decoded datasets (parsed IDX, unpickled CIFAR batches, decoded
JPEG/PNG folders) go to ``<cache>/_arrays/<label>-<key>/`` as ``.npy`` files plus ``meta.json``,
where ``key`` hashes the source files' paths, sizes and modification times, so editing or
replacing a source invalidates its entry.

Every write goes to a temporary name in the destination folder, is fsync'd, and is renamed into
place with :func:`os.replace`: an interrupted write never leaves a half-written file under the
final name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from .types import RawData

CACHE_FORMAT = 1
_ARRAYS = "_arrays"
_STALE_PART_S = 3600.0


def cache_dir() -> Path:
    """The dataset cache folder (not created)."""
    env = os.environ.get("OCDL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ocdl" / "datasets"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_parts(folder: Path, max_age_s: float = _STALE_PART_S) -> None:
    """Delete ``.*.part`` leftovers of writes killed before they could clean up."""
    now = time.time()
    with contextlib.suppress(OSError):
        for p in folder.glob(".*.part"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > max_age_s:
                    p.unlink()


@contextlib.contextmanager
def atomic_write(dest: Path) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``dest`` for writing (and reading back); on success fsync
    it and rename it to ``dest``; on any exception (KeyboardInterrupt included) delete it and
    re-raise."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest.parent)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def source_key(paths: Iterable[Path], extra: Any = None) -> str:
    """A hex key identifying source files by resolved path, size and mtime (plus ``extra``)."""
    items = []
    for p in sorted(Path(p).resolve() for p in paths):
        st = p.stat()
        items.append([str(p), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"v": CACHE_FORMAT, "files": items, "extra": extra}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def tree_key(root: Path) -> list[Path]:
    """All files under ``root`` (for :func:`source_key` of a folder)."""
    return [p for p in Path(root).rglob("*") if p.is_file()]


def entry_dir(label: str, key: str) -> Path:
    """The cache folder of the arrays for ``(label, key)`` (may not exist)."""
    return _entry(label, key)


def _entry(label: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
    return cache_dir() / _ARRAYS / f"{safe}-{key}"


def load_arrays(label: str, key: str, *, mmap: bool = False) -> RawData | None:
    """The cached arrays for ``key``, or ``None`` if absent or unreadable (a broken entry is
    deleted). With ``mmap`` the arrays are memory-mapped copy-on-write instead of read."""
    entry = _entry(label, key)
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="c" if mmap else None,
                                allow_pickle=False)
                  for name in meta["arrays"]}
        for name, shape in meta["shapes"].items():
            if list(arrays[name].shape) != shape:
                raise ValueError(f"{name}: shape {arrays[name].shape} != {shape}")
        return RawData(x_train=arrays["x_train"], y_train=arrays["y_train"],
                       x_test=arrays.get("x_test"), y_test=arrays.get("y_test"),
                       x_valid=arrays.get("x_valid"), y_valid=arrays.get("y_valid"),
                       classes=list(meta["classes"]), format=meta["format"])
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        shutil.rmtree(entry, ignore_errors=True)
        return None


def store_arrays(label: str, key: str, raw: RawData, source: str) -> Path | None:
    """Write ``raw`` to the array cache; return the entry folder, or ``None`` if the cache is not
    writable (caching is an optimisation: failing to write it is not an error)."""
    entry = _entry(label, key)
    if (entry / "meta.json").is_file():
        return entry
    tmp: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".part"))
        names = {}
        for part, (x, y) in raw.parts().items():
            names[f"x_{part}"], names[f"y_{part}"] = x, y
        for name, arr in names.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        meta = {"format": raw.format, "classes": list(raw.classes), "source": source,
                "arrays": list(names), "shapes": {k: list(v.shape) for k, v in names.items()},
                "cache_format": CACHE_FORMAT, "created": time.time()}
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(tmp, entry)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(entry.parent)
        return entry
    except OSError:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return None


def clear_arrays() -> None:
    """Delete every decoded-array cache entry (downloads are kept)."""
    shutil.rmtree(cache_dir() / _ARRAYS, ignore_errors=True)
