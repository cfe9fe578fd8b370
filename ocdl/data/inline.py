"""Inline data: tiny datasets written in the model spec itself (``data: {name: inline, x, y}``).

For small problems (fitting a handful of points, ``ocdl check``): the samples need no file. The
``x`` rows become float32 features ``N×D``; ``y`` becomes int64 class labels (classes
``"0".."K-1"``, K = max label + 1) or float32 regression targets ``N×C``. Test = train unless
``x_test``/``y_test`` are given; there is no valid part unless ``split.valid`` is given (then a
seeded random subset of the training samples, as for other data).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .options import INLINE, DataOptions
from .splits import resolve_sizes, train_valid_indices
from .types import DatasetSplits, Split


def _targets(y: list[Any]) -> torch.Tensor:
    if y and isinstance(y[0], int):
        return torch.tensor(y, dtype=torch.int64)
    return torch.tensor(y, dtype=torch.float32)


def load_inline(options: DataOptions, *, split: dict[str, int] | None = None,
                seed: int | None = None, limit: int | None = None) -> DatasetSplits:
    """The train/valid/test splits of ``options`` (``name: inline``); ``split``, ``seed`` and
    ``limit`` default to the options' own."""
    if options.name != INLINE or options.inline is None:
        raise DataError(f"load_inline needs data options with name: inline and x, y; got "
                        f"name '{options.name}'")
    split = dict(split if split is not None else (options.split or {}))
    seed = options.seed if seed is None else seed
    limit = options.limit if limit is None else limit
    if "test" in split:
        raise DataError("inline data: split.test is not used (test = train unless x_test and "
                        "y_test are given); remove it")
    xs, ys = options.inline
    x = torch.tensor(xs, dtype=torch.float32)
    y = _targets(ys)
    n = len(ys)
    n_train, n_valid = resolve_sizes(n, split, (n, 0), "inline data")
    tr, va = train_valid_indices(n, n_train, n_valid, seed)
    tr_t, va_t = torch.from_numpy(tr.astype(np.int64)), torch.from_numpy(va.astype(np.int64))
    train = Split(x[tr_t], y[tr_t], "train")
    valid = Split(x[va_t], y[va_t], "valid")
    if limit is not None:
        train = train.head(limit)
    if options.inline_test is not None:
        xt, yt = options.inline_test
        test = Split(torch.tensor(xt, dtype=torch.float32), _targets(yt), "test")
        test_from = "inline x_test, y_test"
    else:
        test = Split(x.clone(), y.clone(), "test")
        test_from = "the training samples (no x_test given)"
    if y.dtype == torch.int64:
        k = int(max(int(y.max()), int(test.y.max()) if len(test) else 0)) + 1
        classes = [str(i) for i in range(k)]
        kind = "classification"
    else:
        classes = []
        kind = "regression"
    info = {"format": "inline", "seed": seed, "kind": kind, "test_from": test_from,
            "valid_from": "none" if not n_valid else
            f"seeded random subset of the training set (seed {seed})",
            "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
            "cache": "off"}
    return DatasetSplits(train=train, valid=valid, test=test, classes=classes,
                         source="inline (the model spec)", name=INLINE, info=info)
