"""The containers the data layer hands out.

:class:`RawData` is a dataset as its files define it (the official train set, the official test
set if any, an official validation set if any), before any split. :class:`Split` is one part
(train, valid or test) as tensors; :class:`DatasetSplits` holds the three parts and what they are.

Images are stored channel-first (``N, C, H, W``), vectors as ``N, D``. Pixel data are ``uint8``
(0..255) and converted to float only per batch, on the device (see :mod:`ocdl.data.feeder`);
a user's ``.npz`` may also hold floating-point features, kept as ``float32``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class RawData:
    """A dataset as read from its source, before the train/valid split.

    ``x_*`` are numpy arrays (``uint8`` or ``float32``) shaped ``N, C, H, W`` or ``N, D``;
    ``y_*`` are ``int64`` label arrays in ``0 .. len(classes) - 1``. ``x_test`` is ``None`` for
    data without a test part (a test part is then carved from the training data), ``x_valid`` is
    ``None`` unless the source has its own validation set.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]
    format: str
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The parts present, by name (``train``, ``test``, ``valid``)."""
        out = {"train": (self.x_train, self.y_train)}
        if self.x_test is not None:
            out["test"] = (self.x_test, self.y_test)
        if self.x_valid is not None:
            out["valid"] = (self.x_valid, self.y_valid)
        return out


@dataclass
class Split:
    """One part of a dataset: samples ``x`` (``uint8``, NCHW or N×D) and labels ``y`` (int64).

    The tensors live on the CPU (possibly backed by a memory-mapped file); a
    :class:`~ocdl.data.feeder.Feeder` moves them to the device.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def label_counts(self, num_classes: int) -> list[int]:
        """Samples per class, ``[n_0, …, n_{K-1}]``."""
        return torch.bincount(self.y, minlength=num_classes).tolist()

    def head(self, n: int) -> "Split":
        """The first ``n`` samples (a view, no copy)."""
        return Split(self.x[:n], self.y[:n], self.name)


@dataclass
class DatasetSplits:
    """The train, valid and test parts of a dataset, with its class names and provenance.

    ``source`` says where the data were found (a path, a URL that was downloaded into the cache,
    or ``embedded:…``); ``info`` holds details such as the format, whether the array cache was
    used, and the split sizes and seed.
    """

    train: Split
    valid: Split
    test: Split
    classes: list[str]
    source: str
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.train.sample_shape

    @property
    def is_image(self) -> bool:
        """True when samples are images (``C, H, W``), False for vectors."""
        return len(self.sample_shape) == 3

    def __iter__(self):
        return iter((self.train, self.valid, self.test))
