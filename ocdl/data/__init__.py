"""Datasets and mini-batch feeding.

* :func:`load_dataset` — a named dataset (``mnist``, ``fashion-mnist``, ``cifar-10``,
  ``mnist-subset``) found on the search path or downloaded, the user's own data (``.npz``,
  image folder, tar), or tiny ``inline`` data written in the spec, split into
  train/valid/test (:class:`DatasetSplits` of :class:`Split`);
* :class:`Feeder` — seeded, resumable mini-batches on a device; :func:`make_feeders` builds the
  train/valid/test feeders of a run from its :class:`DataOptions`.

Its names are imported on first use, so that reading a spec (which validates its ``data:`` block
with :mod:`ocdl.data.options` only) does not load the readers of every format (PIL, tarfiles).
"""
from __future__ import annotations

from ..lazy import lazy_attributes

_WHERE = {"Augment": "augment", "Feeder": "feeder", "Feeders": "feeder", "fit_shape": "feeder",
          "make_feeders": "feeder", "load_inline": "inline", "load_dataset": "load",
          "NAMED_DATASETS": "options", "DataOptions": "options",
          "data_options_from_dict": "options", "channel_stats": "preprocess",
          "DatasetSplits": "types", "RawData": "types", "Split": "types"}

__getattr__ = lazy_attributes(__name__, _WHERE)

__all__ = [
    "Augment", "DataOptions", "DatasetSplits", "Feeder", "Feeders", "NAMED_DATASETS", "RawData",
    "Split", "channel_stats", "data_options_from_dict", "fit_shape", "load_dataset", "load_inline",
    "make_feeders",
]
