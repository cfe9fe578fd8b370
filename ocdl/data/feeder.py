"""Feeding mini-batches to the device.

When a split fits (the default on the CPU, and on a GPU when it takes under half the free
memory), its ``uint8`` samples are moved to the device once; each epoch draws a permutation of
``0..N-1`` from a ``torch.Generator`` seeded from ``(seed, epoch)``, and batch k holds samples
``perm[kS:(k+1)S]``. Work is done a chunk of batches at a time (``chunk_batches``, capped at
about ``chunk_bytes`` of floats): one ``index_select`` on the device, augmentation on the
``uint8`` pixels, conversion to float and ``x·a + b`` (the preprocessing), all batched; each
batch is then a view of the chunk. So a batch costs no kernel launch of its own, which matters
for small networks whose steps are launch-bound. Epoch e is the same whatever ran before it, so
a resumed run calls ``epoch(e, start_batch=k)`` and sees exactly the batches it would have seen.

When a split does not fit, it stays on the host (possibly memory-mapped from the array cache)
and is streamed: each chunk is gathered on the host in a background thread, pinned, and copied
asynchronously — same batches, same order as the resident path.

A data-parallel run shards the feeder (:meth:`Feeder.set_shard`): the global batches of N·S
samples are those of one feeder with batch N·S, and each rank prepares and yields its contiguous
rows of them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .augment import Augment, Draws, apply, draw
from .options import DataOptions
from .preprocess import affine, channel_stats
from .splits import splitmix64
from .types import DatasetSplits, Split

_PERM_STREAM = 1
_AUG_STREAM = 2


def derive_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit generator seed from ``(seed, epoch, stream)``."""
    mix = splitmix64(np.array([seed & (2**64 - 1)], dtype=np.uint64))[0]
    mix = splitmix64(np.array([int(mix) ^ (epoch * 0x9E3779B1 + stream)], dtype=np.uint64))[0]
    return int(mix) >> 1


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, epoch, stream))
    return g


class Feeder:
    """Mini-batches of one split on a device.

    split: the samples (``uint8`` images ``N,C,H,W`` or vectors ``N,D``) and labels.
    batch_size: samples per batch S; ``drop_last`` drops a final short batch.
    device: where batches are produced. seed: seed of the per-epoch permutation and augmentation.
    shuffle: permute each epoch (else the stored order). preprocess: ``scale``, ``standardize``
      (with ``mean``/``std`` per channel in scaled units; computed from this split if ``None``)
      or ``none``. flatten: yield ``S×D`` vectors. sample_shape: reshape each sample to this
      (e.g. vectors to images). augment: ``{crop: p, flip: bool, cutout: s}`` (images only).
    dtype: float type of the yielded samples. resident: keep the split on the device (``None``:
      decide by size). chunk_batches, chunk_bytes: batches prepared at once (and per host→device
      copy when streaming), at most about ``chunk_bytes`` of output floats; default 64 on a GPU
      (fewer kernel launches), 1 on the CPU (cache-friendly), 16 when streaming on the CPU.
    """

    def __init__(self, split: Split, *, batch_size: int, device: str | torch.device = "cpu",
                 seed: int = 0, shuffle: bool = True, preprocess: str = "scale",
                 mean: Sequence[float] | torch.Tensor | None = None,
                 std: Sequence[float] | torch.Tensor | None = None, flatten: bool = False,
                 augment: Augment | dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float32, drop_last: bool = False,
                 sample_shape: tuple[int, ...] | None = None, resident: bool | None = None,
                 chunk_batches: int | None = None, chunk_bytes: int = 64 << 20,
                 memory_fraction: float = 0.5):
        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        self.split = split
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.dtype = dtype
        self.n = len(split)
        self.augment = Augment.from_any(augment)
        x = split.x
        self.is_image = x.ndim == 4
        if self.augment.active and not self.is_image:
            raise DataError(f"augmentation needs images (C×H×W samples); this data has samples of "
                            f"shape {tuple(x.shape[1:])}: remove data.augment")
        if self.augment.cutout and self.augment.cutout >= min(x.shape[2:4]):
            raise DataError(f"data.augment.cutout = {self.augment.cutout} is not below the side "
                            f"of these {x.shape[2]}×{x.shape[3]} images (its square could cover "
                            f"all of one); use a smaller side (16 is usual for 32×32 CIFAR-10)")
        self.flatten = flatten
        self.sample_shape = tuple(sample_shape) if sample_shape is not None else None
        if self.sample_shape is not None and math.prod(self.sample_shape) != math.prod(x.shape[1:]):
            raise DataError(f"cannot reshape samples of shape {tuple(x.shape[1:])} to "
                            f"{self.sample_shape}")
        channels = x.shape[1] if x.ndim > 1 else 1
        if preprocess == "standardize" and (mean is None or std is None):
            if self.n == 0:
                raise DataError("standardize: no samples to compute the mean and std from")
            mean, std = channel_stats(x)
        self.preprocess = preprocess
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
        a, b = affine(preprocess, is_uint8=x.dtype == torch.uint8, channels=channels,
                      mean=mean, std=std)
        view = (channels, 1, 1) if self.is_image else (channels,) if x.ndim == 2 else ()
        self._a = a.reshape(view).to(self.device, self.dtype if dtype.is_floating_point else
                                     torch.float32)
        self._b = b.reshape(view).to(self.device, self._a.dtype)
        self._identity = preprocess == "none"
        self._shift = bool((b != 0).any())
        self.resident = self._decide_resident(resident, memory_fraction)
        if chunk_batches is None:
            chunk_batches = 64 if self.device.type != "cpu" else 1 if self.resident else 16
        per_batch = self.batch_size * max(1, math.prod(x.shape[1:])) * dtype.itemsize
        self.chunk_batches = max(1, min(int(chunk_batches), int(chunk_bytes) // per_batch))
        if self.resident:
            self.x = x.to(self.device)
            self.y = split.y.to(self.device)
        else:
            self.x, self.y = x, split.y
        self.rank, self.world = 0, 1
        self.global_size = 0  # rows of the global batch last yielded (sharded feeders)

    def set_shard(self, rank: int, world: int) -> None:
        """Feed rank ``rank`` of ``world`` data-parallel processes (:mod:`ocdl.run.distributed`):
        the global batches are those of a single feeder with batch size ``world·batch_size``,
        in the same order, and this rank keeps the rows [⌊r·k/N⌋, ⌊(r+1)·k/N⌋) of each global
        batch of k rows — [r·b, (r+1)·b) of a full one. A short last global batch of fewer
        than N rows is dropped from training (every rank needs a row); an evaluation split
        keeps it (a rank may get none)."""
        if not 0 <= rank < world:
            raise DataError(f"shard {rank} is outside 0..{world - 1}")
        self.rank, self.world = int(rank), int(world)

    @property
    def global_batch_size(self) -> int:
        """Rows of a full global batch: N·b (b when not sharded)."""
        return self.batch_size * self.world

    def _decide_resident(self, resident: bool | None, fraction: float) -> bool:
        if resident is not None:
            return resident
        if self.device.type == "cpu":
            return True
        need = self.split.x.nbytes + self.split.y.nbytes
        if self.split.x.device == self.device:
            return True
        try:
            free, _ = torch.cuda.mem_get_info(self.device)
        except Exception:  # noqa: BLE001 - unknown device memory: try to keep it resident
            return True
        return need < fraction * free

    def __len__(self) -> int:
        bs = self.global_batch_size
        if self.drop_last or (self.world > 1 and self.shuffle and 0 < self.n % bs < self.world):
            return self.n // bs
        return math.ceil(self.n / bs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def permutation(self, epoch: int) -> torch.Tensor | None:
        """The sample order of ``epoch`` (CPU int64), or ``None`` when not shuffling."""
        if not self.shuffle:
            return None
        return torch.randperm(self.n, generator=_generator(self.seed, epoch, _PERM_STREAM))

    def _prepare(self, xb: torch.Tensor, draws: Draws | None) -> torch.Tensor:
        if draws is not None:
            xb = apply(xb, draws.offsets, draws.flips, self.augment.crop, draws.centres,
                       self.augment.cutout)
        x = xb.to(self.dtype, copy=True)  # never a view of the stored samples: edited in place
        if not self._identity:
            x = x.mul_(self._a)
            if self._shift:
                x = x.add_(self._b)
        if self.sample_shape is not None:
            x = x.reshape(x.shape[0], *self.sample_shape)
        if self.flatten:
            x = x.reshape(x.shape[0], -1)
        return x

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches ``(x, y)`` of ``epoch`` on the device, from ``start_batch`` on.

        ``x`` is float (``dtype``), preprocessed, augmented if asked; ``y`` is int64. The batches
        depend only on ``(seed, epoch)``: skipping the first ``start_batch`` gives the rest of
        the same epoch.
        """
        nb = len(self)
        if not 0 <= start_batch <= nb:
            raise DataError(f"start_batch {start_batch} is outside 0..{nb} (batches per epoch)")
        perm = self.permutation(epoch)
        draws = None
        if self.augment.active:
            draws = draw(self.n, self.augment, _generator(self.seed, epoch, _AUG_STREAM),
                         size=tuple(self.split.x.shape[2:4]))
        return self._batches(perm, draws, start_batch, nb)

    def _gather(self, perm: torch.Tensor | None, lo: int, hi: int):
        if perm is None:
            xc, yc = self.x[lo:hi], self.y[lo:hi]
        else:
            idx = perm[lo:hi]
            xc, yc = self.x.index_select(0, idx), self.y.index_select(0, idx)
        if not self.resident and self.device.type == "cuda":
            xc, yc = xc.pin_memory(), yc.pin_memory()
        return xc, yc

    def _batches(self, perm, draws, start, nb):
        dev, bs = self.device, self.global_batch_size
        span = self.chunk_batches * bs
        end = min(nb * bs, self.n)
        chunks = [(lo, min(lo + span, end)) for lo in range(start * bs, end, span)]
        if not chunks:
            return
        if draws is not None:
            draws = draws.to(dev)
        if self.resident:
            if perm is not None:
                perm = perm.to(dev, non_blocking=True)
            for lo, hi in chunks:
                yield from self._split_chunk(*self._gather(perm, lo, hi), draws, lo, hi)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:  # gather chunk c+1 while c is used
            pending = pool.submit(self._gather, perm, *chunks[0])
            for c, (lo, hi) in enumerate(chunks):
                xc, yc = pending.result()
                if c + 1 < len(chunks):
                    pending = pool.submit(self._gather, perm, *chunks[c + 1])
                xc, yc = xc.to(dev, non_blocking=True), yc.to(dev, non_blocking=True)
                yield from self._split_chunk(xc, yc, draws, lo, hi)

    def _split_chunk(self, xc, yc, draws, lo, hi):
        bs = self.global_batch_size
        if self.world > 1:  # prepare this rank's rows only (their augmentation draws are the
            for b in range(0, hi - lo, bs):  # single feeder's: by position in the epoch)
                k = min(bs, hi - lo - b)  # the global batch's rows; this rank's share of them:
                i, j = b + self.rank * k // self.world, b + (self.rank + 1) * k // self.world
                self.global_size = k
                yield (self._prepare(xc[i:j], None if draws is None else draws[lo + i:lo + j]),
                       yc[i:j])
            return
        x = self._prepare(xc, None if draws is None else draws[lo:hi])
        for b in range(0, hi - lo, bs):
            yield x[b:b + bs], yc[b:b + bs]


@dataclass
class Feeders:
    """The feeders of a run: ``train`` (shuffled, augmented), ``valid`` and ``test`` (stored
    order, no augmentation, larger batches). ``valid`` is ``None`` when the valid split is empty."""

    train: Feeder
    valid: Feeder | None
    test: Feeder
    num_classes: int
    classes: list[str]
    data: DatasetSplits
    input_shape: tuple[int, ...]
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


def fit_shape(sample_shape: tuple[int, ...], input_shape: tuple[int, ...],
              flatten: bool | None, name: str) -> tuple[bool, tuple[int, ...] | None]:
    """Decide how samples of ``sample_shape`` become model inputs of ``input_shape``:
    ``(flatten, reshape_to)``. Raises :class:`DataError` naming both shapes if they do not fit."""
    sample, inp = tuple(sample_shape), tuple(input_shape)
    n_s, n_i = math.prod(sample), math.prod(inp)
    if flatten is True and len(inp) != 1:
        raise DataError(f"data.flatten is true but the model's input shape is {inp}, not a "
                        f"vector; set data.flatten: false or the model input to ({n_s},)")
    if sample == inp:
        return False, None
    if len(inp) == 1 and n_s == n_i:
        if flatten is False:
            raise DataError(f"data.flatten is false but the model's input is the vector {inp} and "
                            f"the samples of '{name}' have shape {sample}; set data.flatten: true "
                            f"or the model input to {sample}")
        return True, None
    if len(sample) == 1 and n_s == n_i:
        return False, inp
    hint = (f"set the model's input shape to {sample} (or ({n_s},) to flatten)" if n_s != n_i else
            f"the layouts differ: set the model's input shape to {sample} (channels first)")
    raise DataError(f"the samples of '{name}' have shape {sample} ({n_s} values) but the model's "
                    f"input shape is {inp} ({n_i} values); {hint}, or pick data that fit")


def make_feeders(options: DataOptions, input_shape: tuple[int, ...],
                 device: str | torch.device, *, data: DatasetSplits | None = None,
                 dtype: torch.dtype = torch.float32, **load_kwargs: Any) -> Feeders:
    """Load ``options.name`` (unless ``data`` is given) and build the train/valid/test feeders
    for a model whose input has ``input_shape``.

    Images are flattened when the input is a vector of the same size, flat data reshaped when
    the input is an image of the same size; otherwise a :class:`DataError` names both shapes.
    ``standardize`` statistics come from the train split and are shared by all three feeders.
    """
    if data is None:
        data = load_dataset_for(options, **load_kwargs)
    flatten, reshape = fit_shape(data.sample_shape, tuple(input_shape), options.flatten,
                                 options.name)
    mean = std = None
    if options.preprocess == "standardize":
        mean, std = channel_stats(data.train.x)
    eval_bs = options.eval_batch_size or max(1000, options.batch_size)
    common = dict(device=device, preprocess=options.preprocess, mean=mean, std=std,
                  flatten=flatten, sample_shape=reshape, dtype=dtype)
    train = Feeder(data.train, batch_size=options.batch_size, seed=options.seed, shuffle=True,
                   augment=options.augment, **common)
    valid = (Feeder(data.valid, batch_size=eval_bs, shuffle=False, **common)
             if len(data.valid) else None)
    test = Feeder(data.test, batch_size=eval_bs, shuffle=False, **common)
    return Feeders(train=train, valid=valid, test=test, num_classes=data.num_classes,
                   classes=list(data.classes), data=data, input_shape=tuple(input_shape),
                   mean=mean, std=std)


def load_dataset_for(options: DataOptions, **kwargs: Any) -> DatasetSplits:
    """:func:`~ocdl.data.load.load_dataset` with the split, seed and limit of ``options``."""
    from .load import load_dataset

    return load_dataset(options, split=options.split, seed=options.seed, limit=options.limit,
                        **kwargs)
