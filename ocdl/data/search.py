"""Where named datasets are looked for.

The search path, in order:

1. ``$OCDL_DATA`` — colon-separated folders; each may hold ``<name>/`` sub-folders (like
   ``shared/datasets``: ``mnist/``, ``fashion-mnist/``, ``cifar-10/``) or directly a dataset's
   files (IDX files are then identified by the checksum of their labels, so a folder of MNIST
   files is never taken for Fashion-MNIST);
2. the user cache (:func:`ocdl.data.cache.cache_dir`), where downloads land;
3. ``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist/*.gz`` there).

A dataset folder may hold, for MNIST/Fashion-MNIST, the four IDX files (``.gz`` or plain, or in a
``raw/`` sub-folder); for CIFAR-10, ``cifar-10-batches-py/``, ``cifar-10-python.tar.gz``, a tar of
an image-folder tree (``cifar-10-jpeg.tar.gz``), or ``train/`` and ``test/`` image folders.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .cache import cache_dir
from .cifar import is_cifar_dir
from .folders import TAR_SUFFIXES
from .idx import find_idx_files, read_idx_bytes
from .registry import DATASETS, IDX_FILES

#: System-wide dataset folders (patched by tests).
SYSTEM_DIRS: list[Path] = [Path("/usr/share/datasets")]

ALIASES: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST", "fashion_mnist", "fashion"),
    "cifar-10": ("cifar-10", "cifar10", "CIFAR10", "CIFAR-10"),
}


@dataclass(frozen=True)
class Found:
    """Where a named dataset was found: its format and the path (and files) to load."""

    name: str
    format: str  # idx | cifar-python-dir | cifar-python-tar | image-tar | image-folder
    path: Path
    files: dict[str, Path] = field(default_factory=dict)


def search_path() -> list[tuple[Path, str]]:
    """The search path as ``(folder, origin)`` pairs, origin being ``OCDL_DATA``, ``cache`` or
    ``system``."""
    out: list[tuple[Path, str]] = []
    for entry in os.environ.get("OCDL_DATA", "").split(os.pathsep):
        if entry.strip():
            out.append((Path(entry.strip()).expanduser(), "OCDL_DATA"))
    out.append((cache_dir(), "cache"))
    out.extend((d, "system") for d in SYSTEM_DIRS)
    return out


def _labels_match(name: str, files: dict[str, Path]) -> bool:
    want = DATASETS[name].sha256.get(IDX_FILES["y_train"])
    try:
        return hashlib.sha256(read_idx_bytes(files["y_train"])).hexdigest() == want
    except Exception:  # noqa: BLE001 - an unreadable file is simply not this dataset
        return False


def _tars(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.name.lower().endswith(TAR_SUFFIXES))


def _find_cifar(folder: Path, named: bool) -> Found | None:
    if (folder / "cifar-10-batches-py").is_dir() and is_cifar_dir(folder / "cifar-10-batches-py"):
        return Found("cifar-10", "cifar-python-dir", folder / "cifar-10-batches-py")
    if named and is_cifar_dir(folder):
        return Found("cifar-10", "cifar-python-dir", folder)
    if (folder / "cifar-10-python.tar.gz").is_file():
        return Found("cifar-10", "cifar-python-tar", folder / "cifar-10-python.tar.gz")
    if (folder / "cifar-10-jpeg.tar.gz").is_file():
        return Found("cifar-10", "image-tar", folder / "cifar-10-jpeg.tar.gz")
    if named:
        tars = _tars(folder)
        if tars:
            return Found("cifar-10", "image-tar", tars[0])
        if (folder / "train").is_dir():
            return Found("cifar-10", "image-folder", folder)
    return None


def find_in(folder: Path, name: str, *, named: bool) -> Found | None:
    """Look for dataset ``name`` in ``folder``; ``named`` says the folder is the dataset's own
    (``<entry>/<name>``) rather than a search-path entry holding files directly."""
    if not folder.is_dir():
        return None
    kind = DATASETS[name].kind
    if kind == "idx":
        files = find_idx_files(folder)
        if files is None or (not named and not _labels_match(name, files)):
            return None
        return Found(name, "idx", folder, files)
    if kind == "cifar":
        return _find_cifar(folder, named)
    return None


def candidates(name: str) -> list[Path]:
    """The folders searched for ``name``, in order (for error messages)."""
    out = []
    for entry, origin in search_path():
        aliases = ALIASES.get(name, (name,)) if origin == "OCDL_DATA" else (name,)
        out.extend(entry / a for a in aliases)
        if origin == "OCDL_DATA":
            out.append(entry)
    return out


def find_named(name: str) -> Found | None:
    """The first place on the search path that holds dataset ``name``, or ``None``."""
    for entry, origin in search_path():
        aliases = ALIASES.get(name, (name,)) if origin == "OCDL_DATA" else (name,)
        for a in aliases:
            found = find_in(entry / a, name, named=True)
            if found:
                return found
        if origin == "OCDL_DATA":
            found = find_in(entry, name, named=False)
            if found:
                return found
    return None
