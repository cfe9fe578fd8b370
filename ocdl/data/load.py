"""``load_dataset``: a named dataset or the user's own data, split into train/valid/test.

Finding: a named dataset is looked up on the search path (:mod:`ocdl.data.search`) and, when
missing, downloaded into the cache (:mod:`ocdl.data.download`); ``mnist-subset`` is embedded in
the package. Anything else is a path: a ``.npz`` (see :mod:`ocdl.data.npz`), an image folder
or a tar of one (:mod:`ocdl.data.folders`), a folder of IDX files, or CIFAR python batches.

Decoding is done once: the decoded arrays are cached (:mod:`ocdl.data.cache`), keyed by the
source files' paths, sizes and mtimes.

Splitting (:mod:`ocdl.data.splits`): test = the official test set (or, if the data have none, a
fixed 10 % carved out); valid = the official validation set if the data have one, else a seeded
random subset of the official training set; train = the rest. Defaults are the paper's
(MNIST and Fashion-MNIST 55k/5k/10k, CIFAR-10 45k/5k/10k).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, did_you_mean
from . import cache as _cache
from .cifar import is_cifar_dir, load_cifar_dir, load_cifar_tar, tar_has_cifar_batches
from .download import _say, fetch_named, offline
from .folders import is_tar, load_image_folder, load_image_tar, tar_member_names
from .idx import find_idx_files, load_idx
from .inline import load_inline
from .npz import load_npz
from .options import INLINE, DataOptions
from .registry import DATASETS
from .search import Found, candidates, find_in, find_named
from .splits import resolve_sizes, subset, test_indices, train_valid_indices
from .types import DatasetSplits, RawData, Split

EMBEDDED = {"mnist-subset": "mnist-subset.npz"}
USER_VALID_FRACTION = 0.1


def embedded_path(name: str) -> Path:
    """The file of an embedded dataset inside the package."""
    return Path(str(resources.files("ocdl.data") / "embedded" / EMBEDDED[name]))


def _missing_message(name: str, download_error: str | None) -> str:
    ds = DATASETS[name]
    looked = ", ".join(str(p) for p in candidates(name))
    env = os.environ.get("OCDL_DATA")
    msg = (f"dataset '{name}' not found; looked in {looked}"
           f"{'' if env else ' (OCDL_DATA is not set)'}")
    if download_error:
        msg += f"; download failed ({download_error})"
    fix = (f"put its files in a folder and set OCDL_DATA to the folder that holds '{name}/'"
           f" (or to the folder of the files), or pass the path of the data instead of its name")
    if ds.apt:
        fix += f", or install it with `apt install {ds.apt}`"
    if offline():
        fix += f", or unset OCDL_OFFLINE to download it into {_cache.cache_dir() / name}"
    else:
        fix += f", or connect to the network to download it into {_cache.cache_dir() / name}"
    return f"{msg}. To fix: {fix}"


def _locate_named(name: str, download: bool, say: Callable[[str], None] | None) -> Found:
    found = find_named(name)
    if found:
        return found
    if not download:
        raise DataError(_missing_message(name, "downloading was turned off"))
    if offline():
        raise DataError(_missing_message(name, "OCDL_OFFLINE is set"))
    try:
        folder = fetch_named(name, say=say)
    except DataError as e:
        raise DataError(_missing_message(name, str(e))) from None
    found = find_in(folder, name, named=True)
    if not found:  # pragma: no cover - fetch_named guarantees the files
        raise DataError(_missing_message(name, f"downloaded files not usable in {folder}"))
    return found


def _detect(path: Path) -> Found:
    """Tell the format of a user-given path."""
    if not path.exists():
        raise DataError(f"'{path}': no such file or folder, and not a dataset name "
                        f"({', '.join(DATASETS)}){did_you_mean(str(path), DATASETS)}")
    if path.is_file():
        low = path.name.lower()
        if low.endswith(".npz"):
            return Found(path.name, "npz", path)
        if is_tar(path):
            fmt = "cifar-python-tar" if tar_has_cifar_batches(tar_member_names(path)) else "image-tar"
            return Found(path.name, fmt, path)
        raise DataError(f"'{path}': unknown data file; give a .npz, a tar(.gz) of an image folder "
                        "or CIFAR batches, or a folder")
    files = find_idx_files(path)
    if files:
        return Found(path.name, "idx", path, files)
    if is_cifar_dir(path):
        return Found(path.name, "cifar-python-dir", path)
    if (path / "cifar-10-batches-py").is_dir() and is_cifar_dir(path / "cifar-10-batches-py"):
        return Found(path.name, "cifar-python-dir", path / "cifar-10-batches-py")
    return Found(path.name, "image-folder", path)


def _source_files(found: Found) -> list[Path]:
    if found.format == "idx":
        return list(found.files.values())
    if found.format in ("image-folder",):
        return _cache.tree_key(found.path)
    if found.format == "cifar-python-dir":
        return [p for p in found.path.iterdir() if p.is_file()]
    return [found.path]


def _read(found: Found, named: str | None, verify: bool) -> RawData:
    ds = DATASETS.get(named) if named else None
    order = list(ds.classes) if ds and ds.kind == "cifar" else None
    if found.format == "idx":
        return load_idx(found.files, ds.sha256 if (ds and verify) else None,
                        list(ds.classes) if ds else None)
    if found.format == "cifar-python-dir":
        return load_cifar_dir(found.path)
    if found.format == "cifar-python-tar":
        return load_cifar_tar(found.path)
    if found.format == "image-tar":
        return load_image_tar(found.path, class_order=order)
    if found.format == "image-folder":
        return load_image_folder(found.path, class_order=order)
    if found.format == "npz":
        return load_npz(found.path)
    raise DataError(f"unknown data format {found.format}")  # pragma: no cover


def _check_named(raw: RawData, name: str, where: str) -> RawData:
    ds = DATASETS[name]
    shape = tuple(raw.x_train.shape[1:])
    if shape != ds.sample_shape:
        raise DataError(f"{where}: {name} samples should have shape {ds.sample_shape}, found "
                        f"{shape}; this is not {ds.title}")
    if len(raw.classes) != len(ds.classes):
        raise DataError(f"{where}: {name} has {len(ds.classes)} classes, found "
                        f"{len(raw.classes)} ({', '.join(raw.classes)})")
    if ds.kind == "cifar" and raw.format.startswith("cifar-python"):
        raw.classes = list(ds.classes)  # the official names (batches.meta may be absent)
    return raw


def _check_labels(raw: RawData, where: str) -> None:
    k = len(raw.classes)
    for part, (x, y) in raw.parts().items():
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{where}: {part} has {x.shape[0]} samples but {y.shape[0]} labels")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= k):
            raise DataError(f"{where}: {part} labels range {int(y.min())}..{int(y.max())} but "
                            f"there are {k} classes")


def _tensor(a: np.ndarray) -> torch.Tensor:
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


def _take(x: np.ndarray, idx: np.ndarray, spill: Path | None, tag: str) -> np.ndarray:
    """``x[idx]``; for memory-mapped ``x`` with a ``spill`` folder, gathered in chunks into a
    memory-mapped ``.npy`` there (so a split never needs to fit in RAM)."""
    if len(idx) and idx[0] == 0 and idx[-1] == len(idx) - 1 and len(idx) == idx[-1] + 1:
        return x[: len(idx)]  # contiguous prefix: a view
    if spill is None or not isinstance(x, np.memmap):
        return x[idx]
    dest = spill / f"{tag}.npy"
    if dest.is_file():
        arr = np.load(dest, mmap_mode="c", allow_pickle=False)
        if arr.shape == (len(idx), *x.shape[1:]):
            return arr
    fd, tmp = tempfile.mkstemp(dir=spill, prefix=f".{tag}.", suffix=".part")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=x.dtype, shape=(len(idx), *x.shape[1:]))
        step = max(1, (64 << 20) // max(1, int(np.prod(x.shape[1:])) * x.itemsize))
        for i in range(0, len(idx), step):
            out[i:i + step] = x[idx[i:i + step]]
        out.flush()
        del out
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return np.load(dest, mmap_mode="c", allow_pickle=False)


def load_dataset(name_or_path: str | os.PathLike[str] | DataOptions, *,
                 split: dict[str, int] | None = None,
                 seed: int = 0, download: bool = True, cache: bool = True, mmap: bool = False,
                 verify: bool = True, limit: int | None = None,
                 say: Callable[[str], None] | None = _say) -> DatasetSplits:
    """Load a dataset and split it into train, valid and test.

    name_or_path: ``mnist``, ``fashion-mnist``, ``cifar-10``, ``mnist-subset``, or a path to a
      ``.npz``, an image folder, a tar(.gz) of one, a folder of IDX files or CIFAR batches; or
      the :class:`DataOptions` of a spec's ``data:`` block (its ``name`` is used; ``name:
      inline`` data are built from its ``x``, ``y``, see :mod:`ocdl.data.inline`).
    split: ``{train: n, valid: m}`` carved from the official training set (``test: k`` only for
      data without a test set); ``None`` = the defaults (the paper's for named datasets, 10 %
      valid for the user's data).
    seed: seed of the valid subset and of a smaller train part (the test part never depends on
      it).
    download: fetch a missing named dataset into the cache (unless ``OCDL_OFFLINE`` is set).
    cache: use and fill the decoded-array cache.
    mmap: memory-map the cached arrays instead of reading them (for data larger than RAM).
    verify: check the SHA-256 of named IDX files against the official content.
    limit: keep only a seeded random ``limit`` of the training samples (never the first ones:
      data stored by class would keep one class).

    Raises :class:`~ocdl.errors.DataError` with what is wrong and how to fix it.
    """
    if isinstance(name_or_path, DataOptions):
        if name_or_path.name == INLINE:
            return load_inline(name_or_path, split=split, seed=seed, limit=limit)
        name_or_path = name_or_path.name
    key_name = str(name_or_path)
    if key_name == INLINE:
        raise DataError("inline data live in a model spec's data block (name: inline with x and"
                        " y); pass its DataOptions to load_dataset, not the name 'inline'")
    named = key_name if key_name in DATASETS else None
    info: dict[str, Any] = {}
    if named and DATASETS[named].kind == "embedded":
        path = embedded_path(named)
        if not path.is_file():
            raise DataError(f"the embedded dataset file {path} is missing; rebuild it with "
                            "`python tools/make_embedded_subset.py` or reinstall ocdl")
        found = Found(named, "npz", path)
        source = f"embedded:{named}"
    elif named:
        found = _locate_named(named, download, say)
        source = str(found.path)
    else:
        found = _detect(Path(key_name).expanduser())
        source = str(found.path)
    where = source
    raw: RawData | None = None
    spill: Path | None = None
    info["cache"] = "off"
    if cache and found.format != "npz":
        label = named or found.path.name
        try:
            key = _cache.source_key(_source_files(found), extra=[found.format, bool(verify)])
        except OSError as e:
            raise DataError(f"{where}: cannot read ({e})") from None
        raw = _cache.load_arrays(label, key, mmap=mmap)
        info["cache"] = "hit" if raw is not None else "miss"
        if raw is None:
            raw = _read(found, named, verify)
            entry = _cache.store_arrays(label, key, raw, source)
            info["cache"] = "stored" if entry else "unwritable"
            if entry and mmap:
                raw = _cache.load_arrays(label, key, mmap=True) or raw
        entry = _cache.entry_dir(label, key)
        info["cache_entry"] = str(entry)
        if mmap and entry.is_dir():
            spill = entry
    else:
        raw = _read(found, named, verify)
    if named:
        raw = _check_named(raw, named, where)
    _check_labels(raw, where)
    return _split(raw, named=named, split=split, seed=seed, limit=limit, source=source,
                  info=info, spill=spill, where=where, fmt=found.format)


def _split(raw: RawData, *, named: str | None, split: dict[str, int] | None, seed: int,
           limit: int | None, source: str, info: dict[str, Any], spill: Path | None, where: str,
           fmt: str) -> DatasetSplits:
    split = dict(split or {})
    unknown = set(split) - {"train", "valid", "test"}
    if unknown:
        raise DataError(f"unknown split keys {sorted(unknown)}; use train, valid (and test for "
                        "data without a test set)")
    x_tr, y_tr = raw.x_train, raw.y_train
    if raw.x_test is not None:
        if "test" in split:
            raise DataError(f"{where}: the data have an official test set "
                            f"({raw.x_test.shape[0]} samples); remove split.test")
        x_te, y_te = raw.x_test, raw.y_test
        info["test_from"] = "official"
    else:
        te_idx, rest = test_indices(len(y_tr), size=split.pop("test", None))
        x_te, y_te = _take(x_tr, te_idx, spill, "carved-test"), y_tr[te_idx]
        x_tr, y_tr = _take(x_tr, rest, spill, "carved-rest"), y_tr[rest]
        info["test_from"] = "carved (fixed 10 %, independent of the seed)" \
            if "test" not in split else "carved"
    split.pop("test", None)
    n = len(y_tr)
    if raw.x_valid is not None:
        if "valid" in split:
            raise DataError(f"{where}: the data have their own validation set "
                            f"({raw.x_valid.shape[0]} samples); remove split.valid")
        n_train = split.get("train", n)
        if not 1 <= n_train <= n:
            raise DataError(f"{where}: split train={n_train} but the training set has {n} samples")
        x_va, y_va = raw.x_valid, raw.y_valid
        tag = f"s{seed}-t{n_train}"
        if n_train < n:
            tr_idx = subset(np.arange(n), n_train, seed)
            x_trs, y_trs = _take(x_tr, tr_idx, spill, f"train-{tag}"), y_tr[tr_idx]
        else:
            x_trs, y_trs = x_tr, y_tr
        info["valid_from"] = "official"
    else:
        ds = DATASETS.get(named) if named else None
        default = ds.default_split if ds else (n - round(n * USER_VALID_FRACTION),
                                                round(n * USER_VALID_FRACTION))
        n_train, n_valid = resolve_sizes(n, split or None, default, where)
        tr_idx, va_idx = train_valid_indices(n, n_train, n_valid, seed)
        tag = f"s{seed}-t{n_train}-v{n_valid}"
        x_trs, y_trs = _take(x_tr, tr_idx, spill, f"train-{tag}"), y_tr[tr_idx]
        x_va, y_va = _take(x_tr, va_idx, spill, f"valid-{tag}"), y_tr[va_idx]
        info["valid_from"] = f"seeded random subset of the training set (seed {seed})"
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be positive, got {limit}")
        if limit < len(y_trs):  # a seeded random `limit` of the train part, never its first
            keep = subset(np.arange(len(y_trs)), limit, seed)
            x_trs, y_trs = _take(x_trs, keep, spill, f"train-{tag}-l{limit}"), y_trs[keep]
    parts = {
        "train": Split(_tensor(x_trs),
                       torch.from_numpy(np.array(y_trs, dtype=np.int64)), "train"),
        "valid": Split(_tensor(x_va),
                       torch.from_numpy(np.array(y_va, dtype=np.int64)), "valid"),
        "test": Split(_tensor(x_te),
                      torch.from_numpy(np.array(y_te, dtype=np.int64)), "test"),
    }
    info.update(format=fmt, seed=seed, sizes={k: len(v) for k, v in parts.items()},
                official={"train": int(raw.x_train.shape[0]),
                          "test": None if raw.x_test is None else int(raw.x_test.shape[0])})
    return DatasetSplits(train=parts["train"], valid=parts["valid"], test=parts["test"],
                         classes=list(raw.classes), source=source,
                         name=named or Path(source).name, info=info)
