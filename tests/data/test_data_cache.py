"""The decoded-array cache and atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ocdl.data import folders, load_dataset
from ocdl.data.cache import atomic_write


def _no_decoding(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded again instead of using the cache")
    monkeypatch.setattr(folders, "_decode", boom)


def test_image_tar_decoded_once(make_images, tar_of, tmp_path, monkeypatch, isolated):
    folder, _ = make_images(per_class=6)
    tar = tar_of(folder, tmp_path / "imgs.tar.gz")
    cold = load_dataset(tar)
    assert cold.info["cache"] == "stored"
    assert list((isolated / "_arrays").iterdir())
    with monkeypatch.context() as m:
        _no_decoding(m)
        warm = load_dataset(tar)
    assert warm.info["cache"] == "hit"
    for a, b in zip(cold, warm):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert warm.classes == cold.classes
    # a changed source (new mtime) is decoded again
    st = tar.stat()
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_dataset(tar).info["cache"] == "stored"


def test_image_folder_cache_and_mmap(make_images, monkeypatch):
    folder, _ = make_images(per_class=5)
    cold = load_dataset(folder, split={"valid": 3})
    with monkeypatch.context() as m:
        _no_decoding(m)
        warm = load_dataset(folder, split={"valid": 3}, mmap=True)
    assert warm.info["cache"] == "hit"
    for a, b in zip(cold, warm):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    # adding an image to the folder invalidates the entry
    (folder / "train" / "cat" / "0000.png").rename(folder / "train" / "cat" / "0100.png")
    assert load_dataset(folder).info["cache"] == "stored"


def test_broken_cache_entry_is_rebuilt(make_idx, isolated):
    folder, arrays, _ = make_idx()
    load_dataset(folder)
    (entry,) = (isolated / "_arrays").iterdir()
    npy = entry / "x_train.npy"
    npy.write_bytes(npy.read_bytes()[:100])
    ds = load_dataset(folder, split={"valid": 0})
    assert ds.info["cache"] == "stored"
    assert np.array_equal(ds.train.x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])


def test_unwritable_cache_is_not_an_error(make_idx, monkeypatch, tmp_path):
    folder, _, _ = make_idx()
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("OCDL_CACHE", str(blocker / "sub"))
    assert load_dataset(folder).info["cache"] == "unwritable"
    assert load_dataset(folder, cache=False).info["cache"] == "off"


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(dest) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_write(dest) as f:
        f.write(b"whole")
    assert dest.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [dest]
