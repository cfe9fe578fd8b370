"""Fixtures of the data tests: an isolated environment and tiny datasets in every format."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocdl.data import registry, search
from ocdl.data.idx import write_idx

_REPO = Path(__file__).resolve().parents[2]
# Captured before any test changes the environment: where the real datasets are (CI sets
# OCDL_DATA=../shared/datasets; a developer's checkout has them beside the repo).
REAL_DATA = Path(os.environ.get("OCDL_DATA", "").split(os.pathsep)[0] or _REPO / "../shared/datasets")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path_factory):
    """No real data, an empty cache, no network, no system folders — unless a test sets them."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("OCDL_CACHE", str(cache))
    monkeypatch.delenv("OCDL_DATA", raising=False)
    monkeypatch.setenv("OCDL_OFFLINE", "1")
    monkeypatch.setattr(search, "SYSTEM_DIRS", [])
    for name in registry.DATASETS:
        monkeypatch.delenv(registry.url_env_var(name), raising=False)
    return cache


@pytest.fixture
def real_data(monkeypatch):
    """Point OCDL_DATA at the real datasets, or skip if they are not here."""
    def use(name: str) -> Path:
        folder = REAL_DATA / name
        if not folder.is_dir():
            pytest.skip(f"real dataset folder {folder} not present (set OCDL_DATA)")
        monkeypatch.setenv("OCDL_DATA", str(REAL_DATA))
        return folder
    return use


def _images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.fixture
def make_idx(tmp_path):
    """Write a tiny MNIST-like IDX dataset; returns (folder, arrays, decompressed sha256s)."""
    def make(folder: Path | None = None, n_train: int = 60, n_test: int = 20, gz: bool = True,
             seed: int = 0, classes: int = 10):
        folder = folder or tmp_path / "idx"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        arrays = {
            "train-images-idx3-ubyte": _images(rng, n_train, (28, 28)),
            "train-labels-idx1-ubyte": (np.arange(n_train) % classes).astype(np.uint8),
            "t10k-images-idx3-ubyte": _images(rng, n_test, (28, 28)),
            "t10k-labels-idx1-ubyte": (np.arange(n_test) % classes).astype(np.uint8),
        }
        shas = {}
        for name, arr in arrays.items():
            raw = write_idx(arr)
            shas[name] = hashlib.sha256(raw).hexdigest()
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
            else:
                (folder / name).write_bytes(raw)
        return folder, arrays, shas
    return make


@pytest.fixture
def patch_named(monkeypatch):
    """Make a named dataset accept tiny fixture files (their digests, sizes and split)."""
    def patch(name: str, **changes):
        monkeypatch.setitem(registry.DATASETS, name,
                            dataclasses.replace(registry.DATASETS[name], **changes))
    return patch


def cifar_batch(rng, n: int, labels_key: bytes = b"labels") -> bytes:
    d = {b"batch_label": b"fixture", labels_key: [int(i % 10) for i in range(n)],
         b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
         b"filenames": [b"f%d.png" % i for i in range(n)]}
    return pickle.dumps(d, protocol=2)


@pytest.fixture
def make_cifar(tmp_path):
    """Write tiny official-format CIFAR python batches; returns the ``cifar-10-batches-py`` folder."""
    def make(root: Path | None = None, n: int = 20, meta: bool = True):
        folder = (root or tmp_path) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(1)
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(cifar_batch(rng, n))
        (folder / "test_batch").write_bytes(cifar_batch(rng, n))
        if meta:
            names = [c.encode() for c in registry.CIFAR10_CLASSES]
            (folder / "batches.meta").write_bytes(
                pickle.dumps({b"label_names": names, b"num_cases_per_batch": n}, protocol=2))
        return folder
    return make


def _make_tar(src: Path, dest: Path, arcroot: str = "") -> Path:
    """Tar ``src``'s contents (gzip'd if ``dest`` ends in .gz) under ``arcroot``."""
    mode = "w:gz" if dest.name.endswith(".gz") else "w"
    with tarfile.open(dest, mode) as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(Path(arcroot) / p.relative_to(src)) if arcroot else
                   str(p.relative_to(src)), recursive=False)
    return dest


@pytest.fixture
def make_images(tmp_path):
    """Write an image-folder tree; returns (folder, {(split, class): [arrays in name order]})."""
    def make(folder: Path | None = None, classes=("cat", "dog", "emu"), per_class: int = 4,
             splits=("train", "test"), size=(6, 5), mode: str = "RGB", ext: str = ".png"):
        folder = folder or tmp_path / "images"
        rng = np.random.default_rng(2)
        content = {}
        for split in splits or ("",):
            for c in classes:
                d = folder / split / c if split else folder / c
                d.mkdir(parents=True, exist_ok=True)
                arrs = []
                for i in range(per_class):
                    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
                    Image.fromarray(a).save(d / f"{i:04d}{ext}")
                    arrs.append(a)
                content[(split or "train", c)] = arrs
        return folder, content
    return make


@pytest.fixture
def tar_of():
    """``tar_of(src, dest, arcroot="")``: tar a folder's contents (gzip'd for ``.gz``)."""
    return _make_tar
