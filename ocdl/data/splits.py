"""Deterministic train/valid(/test) splits.

The valid part is a seeded random subset of the official training set; the train part is the
rest, or a seeded random subset of it when ``train`` (or ``limit``) asks for fewer samples. All
keep the official order. Never the first samples: a dataset stored by class (an image folder,
CIFAR-10 here) would give a training set of one class. Randomness comes from a
SplitMix64 hash of ``(seed, salt, index)`` — plain integer arithmetic, so a split depends only
on the seed and never on the numpy or torch version.

Data without an official test set get one carved the same way, with a fixed seed: the test part
does not change when the run's seed does.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

_M64 = (1 << 64) - 1
TEST_SALT = 0x7E57
VALID_SALT = 0x5A11D
TRAIN_SALT = 0x7A1E


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on uint64."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def seeded_order(n: int, seed: int, salt: int = 0) -> np.ndarray:
    """A permutation of ``0..n-1`` determined by ``(seed, salt)`` alone."""
    base = splitmix64(np.uint64((seed * 0x100000001B3 + salt) & _M64))
    keys = splitmix64(np.arange(n, dtype=np.uint64) ^ base)
    return np.argsort(keys, kind="stable")


def choose(n: int, k: int, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``0..n-1`` into a seeded random subset of size ``k`` and the rest, both sorted."""
    order = seeded_order(n, seed, salt)
    return np.sort(order[:k]), np.sort(order[k:])


def resolve_sizes(n: int, split: dict[str, int] | None, default: tuple[int, int],
                  where: str) -> tuple[int, int]:
    """The (train, valid) sizes from a ``split`` option over an official train set of ``n``.

    Missing ``valid`` takes the default (capped so train fits); missing ``train`` takes the rest.
    """
    split = dict(split or {})
    train, valid = split.get("train"), split.get("valid")
    if valid is None:
        valid = default[1] if train is None else min(default[1], max(n - train, 0))
    if train is None:
        train = n - valid
    if train < 1 or valid < 0 or train + valid > n:
        raise DataError(f"{where}: split train={train} + valid={valid} does not fit the "
                        f"{n} samples of the official training set; choose sizes with "
                        f"train + valid <= {n}")
    return train, valid


def subset(idx: np.ndarray, k: int | None, seed: int) -> np.ndarray:
    """A seeded random ``k`` of the indices ``idx`` (all of them if ``k`` is None or not
    smaller), in their order. The subsets of one seed are nested: a smaller ``k`` takes a part
    of a larger one's."""
    if k is None or k >= len(idx):
        return idx
    return idx[np.sort(seeded_order(len(idx), seed, TRAIN_SALT)[:k])]


def train_valid_indices(n: int, train: int, valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and valid parts (valid: seeded random; train: the rest, or a seeded
    random ``train`` of it)."""
    valid_idx, rest = choose(n, valid, seed, VALID_SALT)
    return subset(rest, train, seed), valid_idx


def test_indices(n: int, fraction: float = 0.1, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Carve a fixed test part (seed-independent) out of ``n`` samples: (test, rest)."""
    k = size if size is not None else max(1, round(n * fraction))
    if not 0 < k < n:
        raise DataError(f"cannot carve a test part of {k} from {n} samples")
    return choose(n, k, 0, TEST_SALT)
