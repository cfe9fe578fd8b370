"""Each source format, read from tiny fixtures, and the clear errors of damaged files."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from ocdl.data import load_dataset
from ocdl.data.cifar import load_cifar_dir, load_cifar_tar
from ocdl.data.folders import load_image_folder, load_image_tar
from ocdl.data.idx import parse_idx, read_idx, write_idx
from ocdl.data.npz import load_npz
from ocdl.data.registry import CIFAR10_CLASSES
from ocdl.errors import DataError

# ---------------------------------------------------------------- IDX


def test_idx_roundtrip_and_header():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    buf = write_idx(a)
    assert int.from_bytes(buf[:4], "big") == 2051
    assert np.array_equal(parse_idx(buf), a)
    assert int.from_bytes(write_idx(np.zeros(5, np.uint8))[:4], "big") == 2049


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_as_path(make_idx, gz):
    folder, arrays, _ = make_idx(gz=gz)
    ds = load_dataset(folder, split={"train": 50, "valid": 10})
    assert ds.info["format"] == "idx"
    assert ds.sample_shape == (1, 28, 28) and ds.train.x.dtype == torch.uint8
    assert [len(s) for s in ds] == [50, 10, 20]
    assert np.array_equal(ds.test.x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert ds.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    # train + valid are exactly the official training set
    got = torch.cat([ds.train.x, ds.valid.x])[:, 0].numpy()
    assert sorted(map(bytes, got)) == sorted(map(bytes, arrays["train-images-idx3-ubyte"]))


def test_idx_raw_subfolder_and_dotted_names(make_idx, tmp_path):
    folder, arrays, _ = make_idx(folder=tmp_path / "MNIST" / "raw")
    for p in folder.iterdir():
        p.rename(p.with_name(p.name.replace("-idx", ".idx")))
    ds = load_dataset(tmp_path / "MNIST", split={"train": 60, "valid": 0})
    assert np.array_equal(ds.train.x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])


def test_idx_wrong_magic(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x12\x34\x56\x78" + bytes(10))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)


def test_idx_truncated_payload(tmp_path):
    p = tmp_path / "x.idx.gz"
    p.write_bytes(gzip.compress(write_idx(np.zeros((4, 28, 28), np.uint8))[:-100]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_idx_truncated_gzip(make_idx):
    folder, _, _ = make_idx()
    f = folder / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: damaged gzip"):
        load_dataset(folder)


def test_idx_sha_mismatch_named(make_idx, monkeypatch, tmp_path):
    make_idx(folder=tmp_path / "data" / "mnist")
    monkeypatch.setenv("OCDL_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="does not match the official"):
        load_dataset("mnist")


# ---------------------------------------------------------------- CIFAR python batches


def test_cifar_python_dir_and_tar(make_cifar, tar_of, tmp_path):
    folder = make_cifar(n=20)
    raw = load_cifar_dir(folder)
    assert raw.x_train.shape == (100, 3, 32, 32) and raw.x_test.shape == (20, 3, 32, 32)
    assert raw.classes == list(CIFAR10_CLASSES)
    tgz = tar_of(folder.parent, tmp_path / "cifar-10-python.tar.gz")
    raw2 = load_cifar_tar(tgz)
    assert np.array_equal(raw.x_train, raw2.x_train) and np.array_equal(raw.y_test, raw2.y_test)
    # channel-planar rows: pixel (c, i, j) is data[k, c*1024 + i*32 + j]
    batch = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    assert raw.x_train[3, 2, 5, 7] == batch[b"data"][3, 2 * 1024 + 5 * 32 + 7]
    ds = load_dataset(tgz)
    assert ds.info["format"] == "cifar-python-tar" and len(ds.test) == 20


def test_cifar_named_python_batches(make_cifar, monkeypatch, tmp_path, patch_named):
    make_cifar(root=tmp_path / "data" / "cifar-10", meta=False)
    monkeypatch.setenv("OCDL_DATA", str(tmp_path / "data"))
    patch_named("cifar-10", default_split=(90, 10))
    ds = load_dataset("cifar-10")
    assert ds.classes == list(CIFAR10_CLASSES)
    assert [len(s) for s in ds] == [90, 10, 20]


def test_cifar_refuses_code_in_pickles(make_cifar):
    folder = make_cifar()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_cifar_dir(folder)


def test_cifar_truncated_tar(make_cifar, tar_of, tmp_path):
    tgz = tar_of(make_cifar().parent, tmp_path / "c.tar.gz")
    tgz.write_bytes(tgz.read_bytes()[:-2000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_cifar_tar(tgz)


# ---------------------------------------------------------------- image folders and tars


def test_image_folder_split_layout(make_images):
    folder, content = make_images()
    raw = load_image_folder(folder)
    assert raw.classes == ["cat", "dog", "emu"]
    assert raw.x_train.shape == (12, 3, 5, 6) and raw.x_test.shape == (12, 3, 5, 6)
    assert raw.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert np.array_equal(raw.x_train[5].transpose(1, 2, 0), content[("train", "dog")][1])


def test_image_folder_class_layout_gray_jpeg_tar(make_images, tar_of, tmp_path):
    folder, content = make_images(splits=(), mode="L", ext=".png", per_class=10)
    tar = tar_of(folder, tmp_path / "mine.tar", arcroot="wrapping-folder")
    raw = load_image_tar(tar)
    assert raw.x_train.shape == (30, 1, 5, 6) and raw.x_test is None
    assert np.array_equal(raw.x_train[10, 0], content[("train", "dog")][0])
    ds = load_dataset(tar)  # no test part: a fixed 10 % is carved out
    assert [len(s) for s in ds] == [24, 3, 3]
    assert ds.info["format"] == "image-tar"


def test_image_folder_cifar_order_from_jpeg_tar(make_images, tar_of, monkeypatch, tmp_path,
                                               patch_named):
    classes = list(CIFAR10_CLASSES)[::-1]  # created in the wrong order on purpose
    folder, _ = make_images(classes=classes, per_class=2, size=(32, 32), ext=".jpg")
    tar_of(folder, (tmp_path / "data" / "cifar-10").mkdir(parents=True) or
           tmp_path / "data" / "cifar-10" / "cifar-10-jpeg.tar.gz")
    monkeypatch.setenv("OCDL_DATA", str(tmp_path / "data"))
    patch_named("cifar-10", default_split=(16, 4))
    ds = load_dataset("cifar-10")
    assert ds.classes == list(CIFAR10_CLASSES)
    assert ds.test.y.tolist() == [k for k in range(10) for _ in range(2)]
    assert ds.sample_shape == (3, 32, 32)


def test_image_folder_mixed_sizes_and_broken_image(make_images):
    folder, _ = make_images()
    bad = folder / "train" / "dog" / "0002.png"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(DataError, match=r"dog/0002\.png: cannot decode image"):
        load_image_folder(folder)


def test_image_folder_without_class_folders(tmp_path):
    (tmp_path / "imgs").mkdir()
    from PIL import Image
    Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / "a.png")
    with pytest.raises(DataError, match="not inside a class folder"):
        load_image_folder(tmp_path / "imgs")


# ---------------------------------------------------------------- npz


def test_npz_nhwc_valid_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mine.npz"
    np.savez(p, x_train=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8),
             y_test=np.arange(8) % 4, x_valid=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
             y_valid=np.eye(4)[np.arange(6) % 4], classes=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(p)
    assert ds.sample_shape == (3, 8, 8) and ds.classes == ["a", "b", "c", "d"]
    assert [len(s) for s in ds] == [40, 6, 8] and ds.info["valid_from"] == "official"
    assert ds.valid.y.tolist() == [0, 1, 2, 3, 0, 1]
    with np.load(p) as z:
        assert np.array_equal(ds.train.x.numpy(), z["x_train"].transpose(0, 3, 1, 2))
    with pytest.raises(DataError, match="own validation set"):
        load_dataset(p, split={"valid": 3})


def test_npz_vectors_float_and_carved_test(tmp_path):
    p = tmp_path / "vec.npz"
    np.savez(p, x_train=np.random.default_rng(0).random((100, 7)), y_train=np.arange(100) % 3)
    ds = load_dataset(p, split={"valid": 5})
    assert ds.sample_shape == (7,) and ds.train.x.dtype == torch.float32
    assert [len(s) for s in ds] == [85, 5, 10]
    ds2 = load_dataset(p, split={"valid": 5}, seed=3)
    assert torch.equal(ds.test.x, ds2.test.x)  # the carved test part ignores the seed
    assert not torch.equal(ds.valid.x, ds2.valid.x)


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((2, 3))}, "needs arrays 'x_train' and 'y_train'"),
    ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(5)}, "expected 4 labels"),
    ({"x_train": np.zeros((4, 3)), "y_train": np.array([0, 1, -1, 0])}, "negative label"),
    ({"x_train": np.full((4, 3), 300), "y_train": np.zeros(4)}, "range 300..300"),
    ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(4), "x_test": np.zeros((2, 3))},
     "only one of x_test and y_test"),
])
def test_npz_errors(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=match):
        load_npz(p)


def test_npz_truncated(tmp_path):
    p = tmp_path / "t.npz"
    np.savez_compressed(p, x_train=np.zeros((50, 50)), y_train=np.zeros(50))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="t.npz"):
        load_dataset(p)


def test_unknown_path_and_name(tmp_path):
    with pytest.raises(DataError, match="did you mean 'mnist'"):
        load_dataset("mnsit")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown data file"):
        load_dataset(tmp_path / "x.csv")


def test_cifar_batches_are_parsed_never_unpickled(make_cifar, monkeypatch):
    """The pickles are read from their opcodes: pickle's Unpickler never runs, and Python 2's
    strings (SHORT_BINSTRING, as in the official files) come back as bytes."""
    from ocdl.data.cifar import _parse

    def refuse(*a, **k):
        raise AssertionError("pickle.Unpickler used")
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    raw = load_cifar_dir(make_cifar(n=20))
    assert raw.x_train.shape == (100, 3, 32, 32) and raw.x_train.dtype == np.uint8
    py2 = b"\x80\x02}q\x00(U\x04dataq\x01U\x03abcq\x02U\x06labelsq\x03]q\x04(K\x01K\x02eu."
    assert _parse(py2) == {b"data": b"abc", b"labels": [1, 2]}
