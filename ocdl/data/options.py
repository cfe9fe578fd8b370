"""The ``data:`` block of a model spec: which dataset and how to feed it.

This module only validates and holds the options; loading lives in the rest of
:mod:`ocdl.data`. The model spec embeds :class:`DataOptions` and validates it with
:func:`data_options_from_dict`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SpecError, did_you_mean, short
from .augment import Augment

NAMED_DATASETS = ("mnist", "fashion-mnist", "cifar-10", "mnist-subset")
INLINE = "inline"  # data given in the spec itself: x, y (and optionally x_test, y_test)
INLINE_KEYS = ("x", "y", "x_test", "y_test")
PREPROCESS = ("scale", "standardize", "none")


@dataclass(frozen=True)
class DataOptions:
    """Options of the ``data:`` block.

    name: a named dataset (``mnist``, ``fashion-mnist``, ``cifar-10``, ``mnist-subset`` — the
      small subset embedded in the package) or a path to the user's own data (``.npz``, an
      image folder with one sub-folder per class, or a tar of one).
    split: sizes of the train and valid parts carved from the official training set (the test
      set is the official one); ``None`` uses the paper's defaults (MNIST 55k/5k, CIFAR-10 45k/5k).
      ``test`` may be given only for data without a test set (default: a fixed 10 %).
    seed: seed of the deterministic split (the valid part, a smaller train part, ``limit``) and
      of the per-epoch batch permutation.
    batch_size: samples per mini-batch S (the paper: 100).
    preprocess: ``scale`` to [0, 1] (the paper's), ``standardize`` per channel, or ``none``.
    flatten: flatten images to vectors (``None``: decided by the model's input shape).
    augment: ``{crop: padding, flip: bool, cutout: side}`` image augmentation on the device
      (train only; :mod:`ocdl.data.augment`).
    limit: use only ``limit`` of the training samples (after the split; a seeded random subset
      in stored order, never the first ones), for quick runs.
    eval_batch_size: batch size of the valid and test feeders (``None``: max(1000, batch_size)).
    x, y, x_test, y_test: the samples of ``name: inline`` data, written in the spec (tiny
      problems, ``ocdl check``): ``x`` a list of rows of numbers (or a list of numbers, one
      feature each), ``y`` class labels (non-negative ints) or regression targets (numbers, or
      rows of numbers); test = train unless ``x_test``/``y_test`` are given; no valid split
      unless ``split.valid`` is given. Stored as tuples (rows as tuples of floats).
    """

    name: str
    split: dict[str, int] | None = None
    seed: int = 0
    batch_size: int = 100
    preprocess: str = "scale"
    flatten: bool | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    eval_batch_size: int | None = None
    x: tuple[tuple[float, ...], ...] | None = None
    y: tuple[Any, ...] | None = None
    x_test: tuple[tuple[float, ...], ...] | None = None
    y_test: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        defaults = asdict(DataOptions(name=self.name))
        return {k: _lists(v) for k, v in d.items() if k == "name" or v != defaults[k]}

    @property
    def inline(self) -> tuple[list, list] | None:
        """``(x, y)`` of inline data as nested lists (``None`` for other data); ``y`` holds ints
        (class labels) or rows of floats (regression targets)."""
        if self.x is None or self.y is None:
            return None
        return _lists(self.x), _lists(self.y)

    @property
    def inline_test(self) -> tuple[list, list] | None:
        """``(x_test, y_test)`` of inline data, or ``None`` (then test = train)."""
        if self.x_test is None or self.y_test is None:
            return None
        return _lists(self.x_test), _lists(self.y_test)


def _lists(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_lists(e) for e in v]
    return v


_KEYS = ("name", "split", "seed", "batch_size", "preprocess", "flatten", "augment", "limit",
         "eval_batch_size", *INLINE_KEYS)


def _posint(v: Any, path: str, zero_ok: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero_ok else 1):
        kind = "a non-negative" if zero_ok else "a positive"
        raise SpecError(f"expected {kind} integer, got {short(v)}", path=path)
    return v


def data_options_from_dict(d: Any, path: str = "data") -> DataOptions:
    """Validate a ``data:`` mapping and return :class:`DataOptions` (raises :class:`SpecError`)."""
    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict):
        raise SpecError(f"expected a mapping with at least 'name', got {short(d)}", path=path)
    for k in d:
        if k not in _KEYS:
            raise SpecError(f"unknown key {short(str(k))}{did_you_mean(str(k), _KEYS)}; allowed: "
                            f"{', '.join(_KEYS)}", path=f"{path}.{k}")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("expected a dataset name (mnist, fashion-mnist, cifar-10, mnist-subset)"
                        ", inline (with x and y) or a path to your own data", path=f"{path}.name")
    looks_like_path = "/" in name or "." in name
    known = (*NAMED_DATASETS, INLINE)
    if not looks_like_path and name not in known:
        raise SpecError(f"unknown dataset {short(name)}{did_you_mean(name, known)}; name one"
                        f" of {', '.join(known)} or give a path (.npz, image folder, tar)",
                        path=f"{path}.name")
    inline = _inline(d, path) if name == INLINE else {}
    if name != INLINE:
        for k in INLINE_KEYS:
            if d.get(k) is not None:
                raise SpecError(f"'{k}' gives inline samples; it needs name: inline (not "
                                f"{short(name)})", path=f"{path}.{k}")
    split = d.get("split")
    if split is not None:
        if not isinstance(split, dict):
            raise SpecError("expected a mapping like {train: 55000, valid: 5000}",
                            path=f"{path}.split")
        for k, v in split.items():
            if k not in ("train", "valid", "test"):
                raise SpecError(f"unknown split {short(str(k))}"
                                f"{did_you_mean(str(k), ('train', 'valid'))};"
                                " the split names train and valid (test is the official test set;"
                                " give test only for data without one)",
                                path=f"{path}.split.{k}")
            _posint(v, f"{path}.split.{k}", zero_ok=(k == "valid"))
    seed = _posint(d.get("seed", 0), f"{path}.seed", zero_ok=True)
    batch = _posint(d.get("batch_size", 100), f"{path}.batch_size")
    pre = d.get("preprocess", "scale")
    if pre not in PREPROCESS:
        raise SpecError(f"unknown preprocess {short(pre)}{did_you_mean(str(pre), PREPROCESS)}; "
                        f"choose one of {', '.join(PREPROCESS)}", path=f"{path}.preprocess")
    flatten = d.get("flatten")
    if flatten is not None and not isinstance(flatten, bool):
        raise SpecError(f"expected true or false, got {short(flatten)}", path=f"{path}.flatten")
    aug = d.get("augment") or {}
    if not isinstance(aug, dict):
        raise SpecError("expected a mapping like {crop: 4, flip: true}", path=f"{path}.augment")
    for k, v in aug.items():
        if k in ("crop", "cutout"):
            _posint(v, f"{path}.augment.{k}", zero_ok=True)
        elif k == "flip":
            if not isinstance(v, bool):
                raise SpecError(f"expected true or false, got {short(v)}",
                                path=f"{path}.augment.flip")
        else:
            raise SpecError(f"unknown augmentation {short(str(k))}"
                            f"{did_you_mean(str(k), Augment.KEYS)};"
                            f" allowed: {', '.join(Augment.KEYS)}", path=f"{path}.augment.{k}")
    limit = d.get("limit")
    if limit is not None:
        _posint(limit, f"{path}.limit")
    eval_batch = d.get("eval_batch_size")
    if eval_batch is not None:
        _posint(eval_batch, f"{path}.eval_batch_size")
    return DataOptions(name=name, split=dict(split) if split else None, seed=seed,
                       batch_size=batch, preprocess=pre, flatten=flatten, augment=dict(aug),
                       limit=limit, eval_batch_size=eval_batch, **inline)


# ---------------------------------------------------------------------- inline data
def _number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (
            float("inf"), float("-inf")):
        raise SpecError(f"expected a finite number, got {short(v)}", path=path)
    return float(v)


def _rows(v: Any, path: str, what: str) -> tuple[tuple[float, ...], ...]:
    """A non-empty list of equally long rows of numbers (a list of numbers: one per row)."""
    if not isinstance(v, (list, tuple)) or not v:
        raise SpecError(f"expected a non-empty list of {what} (rows of numbers like [[0.5], "
                        f"[1.0]]), got {short(v)}", path=path)
    if not isinstance(v[0], (list, tuple)):  # a flat list: one number per sample
        return tuple((_number(e, f"{path}[{i}]"),) for i, e in enumerate(v))
    width = len(v[0])
    rows = []
    for i, row in enumerate(v):
        if not isinstance(row, (list, tuple)):
            raise SpecError(f"expected a row of {width} numbers like the first row, got "
                            f"{short(row)}",
                            path=f"{path}[{i}]")
        if not row:
            raise SpecError("expected a non-empty row of numbers", path=f"{path}[{i}]")
        if len(row) != width:
            raise SpecError(f"ragged rows: this row has {len(row)} numbers but the first row "
                            f"has {width}", path=f"{path}[{i}]")
        rows.append(tuple(_number(e, f"{path}[{i}][{j}]") for j, e in enumerate(row)))
    return tuple(rows)


def _targets(v: Any, n: int, path: str, xpath: str) -> tuple[Any, ...]:
    """Class labels (all non-negative ints) → a tuple of ints; anything else numeric → rows of
    floats (regression targets)."""
    if not isinstance(v, (list, tuple)) or not v:
        raise SpecError("expected a non-empty list of targets: class labels (ints) or "
                        f"regression targets (numbers or rows of numbers), got {short(v)}",
                        path=path)
    if len(v) != n:
        raise SpecError(f"{len(v)} targets for {n} samples in {xpath}; give one per sample",
                        path=path)
    if all(isinstance(e, int) and not isinstance(e, bool) for e in v):
        for i, e in enumerate(v):
            if e < 0:
                raise SpecError(f"expected a class label (a non-negative integer), got {e}",
                                path=f"{path}[{i}]")
        return tuple(int(e) for e in v)
    return _rows(v, path, "targets")


def _inline(d: dict[str, Any], path: str) -> dict[str, Any]:
    """x, y, x_test, y_test of ``name: inline`` (validated, as tuples)."""
    for k in ("x", "y"):
        if d.get(k) is None:
            raise SpecError(f"inline data need '{k}': samples x as rows of numbers and targets y "
                            "(class labels or regression targets), e.g. {name: inline, "
                            "x: [[0.0], [0.5]], y: [[0.0], [0.25]]}", path=f"{path}.{k}" if k in d
                            else path)
    x = _rows(d["x"], f"{path}.x", "samples")
    y = _targets(d["y"], len(x), f"{path}.y", f"{path}.x")
    out: dict[str, Any] = {"x": x, "y": y}
    xt, yt = d.get("x_test"), d.get("y_test")
    if (xt is None) != (yt is None):
        missing = "y_test" if yt is None else "x_test"
        raise SpecError(f"give both x_test and y_test, or neither (test = train); "
                        f"{missing} is missing", path=f"{path}.{missing}")
    if xt is not None:
        x_test = _rows(xt, f"{path}.x_test", "samples")
        if len(x_test[0]) != len(x[0]):
            raise SpecError(f"test samples have {len(x_test[0])} features but x has "
                            f"{len(x[0])}", path=f"{path}.x_test")
        y_test = _targets(yt, len(x_test), f"{path}.y_test", f"{path}.x_test")
        labels = isinstance(y[0], int)
        if isinstance(y_test[0], int) != labels or (
                not labels and len(y_test[0]) != len(y[0])):
            raise SpecError("y_test must be of the same kind as y (" + (
                "class labels" if labels else f"rows of {len(y[0])} numbers") + ")",
                path=f"{path}.y_test")
        out.update(x_test=x_test, y_test=y_test)
    return out
