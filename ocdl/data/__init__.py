"""Datasets and mini-batch feeding.

* :func:`load_dataset` — a named dataset (``mnist``, ``fashion-mnist``, ``cifar-10``,
  ``mnist-subset``) found on the search path or downloaded, the user's own data (``.npz``,
  image folder, tar), or tiny ``inline`` data written in the spec, split into
  train/valid/test (:class:`DatasetSplits` of :class:`Split`);
* :class:`Feeder` — seeded, resumable mini-batches on a device; :func:`make_feeders` builds the
  train/valid/test feeders of a run from its :class:`DataOptions`.
"""
from .augment import Augment
from .feeder import Feeder, Feeders, fit_shape, make_feeders
from .inline import load_inline
from .load import load_dataset
from .options import NAMED_DATASETS, DataOptions, data_options_from_dict
from .preprocess import channel_stats
from .types import DatasetSplits, RawData, Split

__all__ = [
    "Augment", "DataOptions", "DatasetSplits", "Feeder", "Feeders", "NAMED_DATASETS", "RawData",
    "Split", "channel_stats", "data_options_from_dict", "fit_shape", "load_dataset", "load_inline",
    "make_feeders",
]
