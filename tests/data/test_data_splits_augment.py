"""Deterministic splits and on-device augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ocdl.data import Augment, load_dataset
from ocdl.data.augment import apply, draw
from ocdl.data.splits import (VALID_SALT, choose, resolve_sizes, seeded_order, splitmix64,
                              subset, train_valid_indices)
from ocdl.errors import DataError

M64 = (1 << 64) - 1


def _splitmix_ref(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def test_splitmix_matches_reference():
    xs = [0, 1, 2, 12345, M64, 1 << 63]
    assert splitmix64(np.array(xs, dtype=np.uint64)).tolist() == [_splitmix_ref(x) for x in xs]


def test_split_is_pinned():
    # Splits must never change between versions: a changed split silently changes results.
    assert seeded_order(10, 0).tolist() == [1, 4, 5, 7, 6, 9, 0, 3, 2, 8]
    assert choose(20, 5, 7, VALID_SALT)[0].tolist() == [7, 8, 9, 10, 15]
    # a train part (or limit) smaller than the rest: a seeded random subset since session 10,
    # the first ones before (a one-class training set on data stored by class)
    assert subset(np.arange(20), 5, 7).tolist() == [4, 8, 10, 13, 19]


def test_train_valid_partition():
    tr, va = train_valid_indices(1000, 900, 100, seed=3)
    assert len(tr) == 900 and len(va) == 100
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(1000))
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
    tr2, va2 = train_valid_indices(1000, 900, 100, seed=3)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, train_valid_indices(1000, 900, 100, seed=4)[1])
    tr3, _ = train_valid_indices(1000, 500, 100, seed=3)  # a smaller train: part of the larger
    assert len(tr3) == 500 and np.all(np.diff(tr3) > 0) and set(tr3) < set(tr)
    assert not np.array_equal(tr3, tr[:500])  # not the first ones
    assert set(subset(tr3, 200, 3)) < set(tr3)  # limit within it: nested again


def test_smaller_train_parts_keep_every_class_of_data_stored_by_class():
    # an image folder (CIFAR-10 here) is stored class by class: the first 10 % are one class
    y = np.repeat(np.arange(10), 100)
    tr, _ = train_valid_indices(1000, 200, 0, seed=0)
    assert np.bincount(y[tr], minlength=10).min() >= 8  # about 20 of each
    assert np.bincount(y[subset(np.arange(1000), 100, 1)], minlength=10).min() >= 3


@pytest.mark.parametrize("valid_part", [False, True])
def test_split_train_and_limit_of_sorted_npz_keep_every_class(tmp_path, valid_part):
    y = np.repeat(np.arange(4), 100)  # stored by class
    x = np.zeros((400, 1, 4, 4), dtype=np.uint8)
    x[:, 0, 0, 0] = y * 50  # each sample carries its label
    extra = {"x_valid": x[:40], "y_valid": y[:40]} if valid_part else {}
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:40], y_test=y[:40], **extra)
    split = {"train": 40} if valid_part else {"train": 40, "valid": 0}
    for kw in ({"split": split}, {"limit": 40}):
        d = load_dataset(str(tmp_path / "d.npz"), cache=False, **kw)
        assert len(d.train) == 40 and set(d.train.y.tolist()) == {0, 1, 2, 3}, kw
        # the samples go with their labels
        assert torch.equal(d.train.x[:, 0, 0, 0].long(), d.train.y * 50)


def test_resolve_sizes():
    assert resolve_sizes(60000, None, (55000, 5000), "x") == (55000, 5000)
    assert resolve_sizes(60000, {"valid": 1000}, (55000, 5000), "x") == (59000, 1000)
    assert resolve_sizes(60000, {"train": 10000}, (55000, 5000), "x") == (10000, 5000)
    assert resolve_sizes(60000, {"train": 58000}, (55000, 5000), "x") == (58000, 2000)
    with pytest.raises(DataError, match="train=59000 \\+ valid=5000 does not fit"):
        resolve_sizes(60000, {"train": 59000, "valid": 5000}, (55000, 5000), "x")


def test_embedded_split_deterministic():
    a = load_dataset("mnist-subset", seed=5)
    b = load_dataset("mnist-subset", seed=5)
    c = load_dataset("mnist-subset", seed=6)
    assert [len(s) for s in a] == [7000, 1000, 2000]
    assert torch.equal(a.valid.x, b.valid.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.valid.x, c.valid.x)
    assert torch.equal(a.test.x, c.test.x)
    assert len(load_dataset("mnist-subset", limit=123).train) == 123


# ---------------------------------------------------------------- augmentation


def _reference(x, offsets, flips, pad, centres=None, side=0):
    """Per sample: pad, cut the window, flip, then DeVries & Taylor's cutout as in their code
    (mask[y1:y2, x1:x2] = 0 with y1 = clip(cy − s/2), y2 = clip(cy − s/2 + s), on the image)."""
    out = []
    for k in range(x.shape[0]):
        p = F.pad(x[k].float(), (pad, pad, pad, pad))
        dy, dx = offsets[k].tolist()
        crop = p[:, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        img = crop.flip(-1) if flips[k] else crop.clone()
        if centres is not None:
            cy, cx = centres[k].tolist()
            y1, x1 = max(cy - side // 2, 0), max(cx - side // 2, 0)
            y2, x2 = min(cy - side // 2 + side, x.shape[2]), min(cx - side // 2 + side, x.shape[3])
            img[:, y1:y2, x1:x2] = 0
        out.append(img)
    return torch.stack(out).to(x.dtype)


@pytest.mark.parametrize("pad, flip", [(4, True), (2, False), (0, True), (3, True)])
def test_augment_matches_per_sample_reference(pad, flip):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 9, 7), dtype=torch.uint8, generator=g)
    d = draw(16, Augment(crop=pad, flip=flip), g)
    offs, flips = d.offsets, d.flips
    assert offs.shape == (16, 2) and flips.shape == (16,) and d.centres is None
    assert int(offs.min()) >= 0 and int(offs.max()) <= 2 * pad
    got = apply(x, offs, flips, pad)
    assert got.shape == x.shape and got.dtype == torch.uint8
    assert torch.equal(got, _reference(x, offs, flips, pad))


def test_augment_identity_and_extremes():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.uint8).reshape(2, 1, 3, 3)
    none = apply(x, torch.full((2, 2), 1), torch.zeros(2, dtype=torch.bool), 1)
    assert torch.equal(none, x)  # offset p with padding p is the original image
    corner = apply(x, torch.zeros(2, 2, dtype=torch.long), torch.tensor([False, True]), 1)
    assert corner[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]
    assert corner[1, 0].tolist() == [[0, 0, 0], [10, 9, 0], [13, 12, 0]]


@pytest.mark.parametrize("side, pad", [(4, 2), (3, 0), (1, 1), (6, 0)])
def test_cutout_matches_per_sample_reference(side, pad):
    g = torch.Generator().manual_seed(side)
    x = torch.randint(1, 256, (40, 2, 7, 9), dtype=torch.uint8, generator=g)
    aug = Augment(crop=pad, flip=True, cutout=side)
    d = draw(40, aug, torch.Generator().manual_seed(1), size=(7, 9))
    cy, cx = d.centres[:, 0], d.centres[:, 1]
    assert d.centres.shape == (40, 2) and int(cy.min()) >= 0 and int(cy.max()) <= 6
    assert int(cx.max()) <= 8 and len(set(cy.tolist())) > 3   # spread over the image
    got = apply(x, d.offsets, d.flips, pad, d.centres, side)
    assert torch.equal(got, _reference(x, d.offsets, d.flips, pad, d.centres, side))
    # crop and flip draws do not depend on cutout: adding it keeps an epoch's shifts and flips
    plain = draw(40, Augment(crop=pad, flip=True), torch.Generator().manual_seed(1))
    assert torch.equal(plain.offsets, d.offsets) and torch.equal(plain.flips, d.flips)
    if pad == 0:  # the cut square (clipped at the border) is the only black there
        zeros = (got == 0).all(dim=1).sum(dim=(1, 2))
        rows = (torch.minimum(cy - side // 2 + side, torch.tensor(7))
                - torch.clamp(cy - side // 2, min=0))
        cols = (torch.minimum(cx - side // 2 + side, torch.tensor(9))
                - torch.clamp(cx - side // 2, min=0))
        assert torch.equal(zeros, rows * cols) and int(zeros.max()) == side * side


def test_cutout_hand_computed():
    x = torch.full((1, 1, 4, 5), 9, dtype=torch.uint8)
    none, no_flip = torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, dtype=torch.bool)
    got = apply(x, none, no_flip, 0, torch.tensor([[0, 3]]), 2)  # rows −1..0, cols 2..3
    assert got[0, 0].tolist() == [[9, 9, 0, 0, 9], [9] * 5, [9] * 5, [9] * 5]
    got = apply(x, none, no_flip, 0, torch.tensor([[2, 2]]), 3)  # rows 1..3, cols 1..3
    assert got[0, 0].tolist() == [[9] * 5, [9, 0, 0, 0, 9], [9, 0, 0, 0, 9], [9, 0, 0, 0, 9]]


def test_augment_options():
    assert Augment.from_any({"crop": 4, "flip": True}) == Augment(4, True)
    assert Augment.from_any({"cutout": 16}) == Augment(cutout=16) and Augment(cutout=8).active
    assert not Augment.from_any(None).active
    with pytest.raises(DataError, match="unknown augmentation.*allowed: crop, flip, cutout"):
        Augment.from_any({"rotate": 3})
    with pytest.raises(DataError, match="image size"):
        draw(3, Augment(cutout=2), torch.Generator())
