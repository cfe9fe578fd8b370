"""Feeders: reproducible, resumable batches; streaming equals resident; preprocessing; shapes."""
from __future__ import annotations

import pytest
import torch

from ocdl.data import DataOptions, Feeder, Split, data_options_from_dict, load_dataset, make_feeders
from ocdl.errors import DataError, SpecError


def _split(n=103, shape=(3, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g),
                 torch.arange(n) % 10, "train")


def _batches(feeder, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in feeder.epoch(epoch, start)]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_len_and_coverage():
    s = _split()
    f = Feeder(s, batch_size=10, seed=1)
    assert len(f) == 11 and len(Feeder(s, batch_size=10, drop_last=True)) == 10
    ys = torch.cat([y for _, y in f.epoch(0)])
    assert len(ys) == 103 and sorted(ys.tolist()) == sorted(s.y.tolist())
    # every sample exactly once: match rows back to the source
    xs = torch.cat([x for x, _ in Feeder(s, batch_size=10, seed=1, preprocess="none").epoch(0)])
    src = s.x.float()
    order = [int(torch.nonzero((src == row).all(dim=(1, 2, 3)))[0]) for row in xs]
    assert sorted(order) == list(range(103)) and order != list(range(103))


def test_epochs_reproducible_and_resumable():
    s = _split()
    aug = {"crop": 2, "flip": True}
    f1 = Feeder(s, batch_size=16, seed=7, augment=aug)
    f2 = Feeder(s, batch_size=16, seed=7, augment=aug)
    e3 = _batches(f1, 3)
    assert _same(e3, _batches(f2, 3))             # a fresh feeder gives the same epoch 3
    assert not _same(e3, _batches(f1, 4))         # another epoch differs
    assert _same(e3[4:], _batches(f2, 3, start=4))  # a resumed run sees the rest of epoch 3
    assert _batches(f1, 3, start=len(f1)) == []
    assert not _same(e3, _batches(Feeder(s, batch_size=16, seed=8, augment=aug), 3))
    with pytest.raises(DataError, match="start_batch 99 is outside 0..7"):
        next(f1.epoch(0, 99))


def test_cutout_in_feeder_reproducible_resumable_and_checked():
    s = _split(n=64, shape=(3, 8, 8))
    aug = {"crop": 1, "flip": True, "cutout": 4}
    f1, f2 = Feeder(s, batch_size=16, seed=2, augment=aug), Feeder(s, batch_size=16, seed=2,
                                                                   augment=aug)
    e1 = _batches(f1, 1)
    assert _same(e1, _batches(f2, 1)) and _same(e1[2:], _batches(f2, 1, start=2))
    plain = _batches(Feeder(s, batch_size=16, seed=2, augment={"crop": 1, "flip": True}), 1)
    x, xp = torch.cat([b[0] for b in e1]), torch.cat([b[0] for b in plain])
    cut = (x != xp).any(dim=1)  # pixels cutout changed: all now black, at most 4×4 per image
    assert cut.any() and bool((x.permute(0, 2, 3, 1)[cut] == 0).all())
    assert int(cut.sum(dim=(1, 2)).max()) <= 16
    assert _same(_batches(Feeder(s, batch_size=16, seed=2, augment=aug, resident=False,
                                 chunk_batches=2), 1), e1)
    with pytest.raises(DataError, match="cutout = 8 is not below the side of these 8×8"):
        Feeder(s, batch_size=16, augment={"cutout": 8})
    with pytest.raises(SpecError, match="data.augment.cutout"):
        data_options_from_dict({"name": "cifar-10", "augment": {"cutout": -1}})
    with pytest.raises(SpecError, match="unknown augmentation 'cutuot'.*cutout"):
        data_options_from_dict({"name": "cifar-10", "augment": {"cutuot": 16}})


def test_streaming_equals_resident():
    s = _split(n=250)
    kw = dict(batch_size=16, seed=3, augment={"crop": 1, "flip": True}, preprocess="standardize")
    res = Feeder(s, **kw, resident=True)
    st = Feeder(s, **kw, resident=False, chunk_batches=3)
    assert not st.resident
    assert _same(_batches(res, 2), _batches(st, 2))
    chunked = Feeder(s, **kw, resident=True, chunk_batches=4)  # the GPU default prepares chunks
    assert chunked.chunk_batches == 4
    assert _same(_batches(res, 2), _batches(chunked, 2))
    assert _same(_batches(res, 2, 5), _batches(chunked, 2, 5))
    assert _same(_batches(res, 2, 5), _batches(st, 2, 5))
    ev = dict(batch_size=40, shuffle=False)
    assert _same(_batches(Feeder(s, **ev), 0), _batches(Feeder(s, **ev, resident=False), 0))


def test_preprocess_values():
    s = _split(n=64)
    x, _ = next(Feeder(s, batch_size=64, shuffle=False).epoch(0))
    assert torch.allclose(x, s.x.float() / 255)
    x, _ = next(Feeder(s, batch_size=64, shuffle=False, preprocess="none").epoch(0))
    assert torch.equal(x, s.x.float())
    f = Feeder(s, batch_size=64, shuffle=False, preprocess="standardize")
    x, _ = next(f.epoch(0))
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    m, sd = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    x, _ = next(Feeder(s, batch_size=64, shuffle=False, preprocess="standardize", mean=m,
                       std=sd).epoch(0))
    want = (s.x.float() / 255 - torch.tensor(m)[:, None, None]) / torch.tensor(sd)[:, None, None]
    assert torch.allclose(x, want, atol=1e-5)
    x, _ = next(Feeder(s, batch_size=8, flatten=True, dtype=torch.float64).epoch(0))
    assert x.shape == (8, 192) and x.dtype == torch.float64


def test_float_data_is_never_modified():
    x = torch.rand(30, 4) * 10
    s = Split(x.clone(), torch.zeros(30).long())
    f = Feeder(s, batch_size=10, shuffle=False, preprocess="standardize")
    first = _batches(f, 0)
    assert _same(first, _batches(f, 1)) and torch.equal(s.x, x)


def test_vector_data_standardize_per_feature_and_no_augment():
    s = Split(torch.rand(50, 4) * torch.tensor([1.0, 10.0, 100.0, 0.0]), torch.zeros(50).long())
    x, _ = next(Feeder(s, batch_size=50, shuffle=False, preprocess="standardize").epoch(0))
    assert torch.allclose(x[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(x[:, 3], torch.zeros(50))  # a constant feature is only centred
    with pytest.raises(DataError, match="augmentation needs images"):
        Feeder(s, batch_size=5, augment={"flip": True})


def test_make_feeders_flatten_and_errors():
    opts = data_options_from_dict({"name": "mnist-subset", "batch_size": 50, "seed": 2,
                                   "augment": {"crop": 2}})
    fe = make_feeders(opts, (784,), "cpu")
    assert fe.num_classes == 10 and fe.classes[3] == "3"
    assert len(fe.train) == 140 and fe.train.flatten and fe.train.augment.crop == 2
    assert not fe.test.shuffle and not fe.test.augment.active and fe.test.batch_size == 1000
    x, y = next(fe.valid.epoch(0))
    assert x.shape == (1000, 784) and y.dtype == torch.int64
    assert torch.allclose(x, fe.data.valid.x[:1000].reshape(1000, -1).float() / 255)
    fe2 = make_feeders(opts, (1, 28, 28), "cpu")
    assert next(fe2.train.epoch(0))[0].shape == (50, 1, 28, 28)
    with pytest.raises(DataError, match=r"shape \(1, 28, 28\) \(784 values\).*\(3, 32, 32\)"):
        make_feeders(opts, (3, 32, 32), "cpu", data=fe.data)
    with pytest.raises(DataError, match="layouts differ"):
        make_feeders(opts, (28, 28, 1), "cpu", data=fe.data)
    with pytest.raises(DataError, match="data.flatten is false"):
        make_feeders(DataOptions(name="mnist-subset", flatten=False), (784,), "cpu", data=fe.data)
    nov = make_feeders(DataOptions(name="mnist-subset", split={"valid": 0}, eval_batch_size=300,
                                   preprocess="standardize"), (784,), "cpu")
    assert nov.valid is None and nov.test.batch_size == 300 and len(nov.train.split) == 8000
    assert torch.allclose(nov.test.mean, nov.train.mean)


def test_vectors_reshaped_to_images(tmp_path):
    import numpy as np
    p = tmp_path / "flat.npz"
    np.savez(p, x_train=np.arange(20 * 12, dtype=np.uint8).reshape(20, 12), y_train=np.zeros(20),
             x_test=np.zeros((4, 12), np.uint8), y_test=np.zeros(4))
    fe = make_feeders(DataOptions(name=str(p), batch_size=5), (3, 2, 2), "cpu")
    x, _ = next(fe.test.epoch(0))
    assert x.shape == (4, 3, 2, 2)


def test_options_extension():
    o = data_options_from_dict({"name": "x.npz", "split": {"test": 5}, "eval_batch_size": 64})
    assert o.split == {"test": 5} and o.eval_batch_size == 64
    with pytest.raises(SpecError, match="data.eval_batch_size"):
        data_options_from_dict({"name": "mnist", "eval_batch_size": 0})
    with pytest.raises(DataError, match="official test set"):
        load_dataset("mnist-subset", split={"test": 5})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_resident_and_streaming_match_cpu():
    s = _split(n=500)
    kw = dict(batch_size=32, seed=1, augment={"crop": 2, "flip": True, "cutout": 5},
              preprocess="standardize")
    cpu = _batches(Feeder(s, **kw), 1)
    for resident in (True, False):
        gpu = [(x.cpu(), y.cpu()) for x, y in Feeder(s, **kw, device="cuda",
                                                    resident=resident).epoch(1)]
        assert all(torch.allclose(a[0], b[0], atol=1e-6) and torch.equal(a[1], b[1])
                   for a, b in zip(cpu, gpu)) and len(cpu) == len(gpu)
