"""The ``data:`` block of a model spec: which dataset and how to feed it.

This module only validates and holds the options; loading lives in the rest of
:mod:`ocdl.data`. The model spec embeds :class:`DataOptions` and validates it with
:func:`data_options_from_dict`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SpecError, did_you_mean

NAMED_DATASETS = ("mnist", "fashion-mnist", "cifar-10", "mnist-subset")
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
    seed: seed of the deterministic split and of the per-epoch batch permutation.
    batch_size: samples per mini-batch S (the paper: 100).
    preprocess: ``scale`` to [0, 1] (the paper's), ``standardize`` per channel, or ``none``.
    flatten: flatten images to vectors (``None``: decided by the model's input shape).
    augment: ``{crop: padding, flip: bool}`` image augmentation on the device (train only).
    limit: use only the first ``limit`` training samples (after the split), for quick runs.
    eval_batch_size: batch size of the valid and test feeders (``None``: max(1000, batch_size)).
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        defaults = asdict(DataOptions(name=self.name))
        return {k: v for k, v in d.items() if k == "name" or v != defaults[k]}


_KEYS = ("name", "split", "seed", "batch_size", "preprocess", "flatten", "augment", "limit",
         "eval_batch_size")


def _posint(v: Any, path: str, zero_ok: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero_ok else 1):
        kind = "a non-negative" if zero_ok else "a positive"
        raise SpecError(f"expected {kind} integer, got {v!r}", path=path)
    return v


def data_options_from_dict(d: Any, path: str = "data") -> DataOptions:
    """Validate a ``data:`` mapping and return :class:`DataOptions` (raises :class:`SpecError`)."""
    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict):
        raise SpecError(f"expected a mapping with at least 'name', got {d!r}", path=path)
    for k in d:
        if k not in _KEYS:
            raise SpecError(f"unknown key '{k}'{did_you_mean(k, _KEYS)}; allowed: "
                            f"{', '.join(_KEYS)}", path=f"{path}.{k}")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("expected a dataset name (mnist, fashion-mnist, cifar-10, mnist-subset)"
                        " or a path to your own data", path=f"{path}.name")
    looks_like_path = "/" in name or "." in name
    if not looks_like_path and name not in NAMED_DATASETS:
        raise SpecError(f"unknown dataset '{name}'{did_you_mean(name, NAMED_DATASETS)}; name one"
                        f" of {', '.join(NAMED_DATASETS)} or give a path (.npz, image folder, tar)",
                        path=f"{path}.name")
    split = d.get("split")
    if split is not None:
        if not isinstance(split, dict):
            raise SpecError("expected a mapping like {train: 55000, valid: 5000}",
                            path=f"{path}.split")
        for k, v in split.items():
            if k not in ("train", "valid", "test"):
                raise SpecError(f"unknown split '{k}'{did_you_mean(str(k), ('train', 'valid'))};"
                                " the split names train and valid (test is the official test set;"
                                " give test only for data without one)",
                                path=f"{path}.split.{k}")
            _posint(v, f"{path}.split.{k}", zero_ok=(k == "valid"))
    seed = _posint(d.get("seed", 0), f"{path}.seed", zero_ok=True)
    batch = _posint(d.get("batch_size", 100), f"{path}.batch_size")
    pre = d.get("preprocess", "scale")
    if pre not in PREPROCESS:
        raise SpecError(f"unknown preprocess '{pre}'{did_you_mean(str(pre), PREPROCESS)}; "
                        f"choose one of {', '.join(PREPROCESS)}", path=f"{path}.preprocess")
    flatten = d.get("flatten")
    if flatten is not None and not isinstance(flatten, bool):
        raise SpecError(f"expected true or false, got {flatten!r}", path=f"{path}.flatten")
    aug = d.get("augment") or {}
    if not isinstance(aug, dict):
        raise SpecError("expected a mapping like {crop: 4, flip: true}", path=f"{path}.augment")
    for k, v in aug.items():
        if k == "crop":
            _posint(v, f"{path}.augment.crop", zero_ok=True)
        elif k == "flip":
            if not isinstance(v, bool):
                raise SpecError(f"expected true or false, got {v!r}", path=f"{path}.augment.flip")
        else:
            raise SpecError(f"unknown augmentation '{k}'{did_you_mean(str(k), ('crop', 'flip'))};"
                            " allowed: crop, flip", path=f"{path}.augment.{k}")
    limit = d.get("limit")
    if limit is not None:
        _posint(limit, f"{path}.limit")
    eval_batch = d.get("eval_batch_size")
    if eval_batch is not None:
        _posint(eval_batch, f"{path}.eval_batch_size")
    return DataOptions(name=name, split=dict(split) if split else None, seed=seed,
                       batch_size=batch, preprocess=pre, flatten=flatten, augment=dict(aug),
                       limit=limit, eval_batch_size=eval_batch)
