"""Replaying a solver's update (or its whole step) as one CUDA graph.

A discrete E-MSA update is a fixed sequence of about a hundred small elementwise kernels whose
shapes never change; on a GPU their launch cost, not their work, sets the step time. The same
holds for a small network's forward and reverse passes at a small batch. A
:class:`GraphedUpdate` runs ``fn(inputs)`` eagerly the first time for each ``warm_key`` (which
creates the library handles and scratch buffers and lets cuDNN pick its algorithms for the
inputs' shapes; on a side stream, as torch requires before capturing a reverse pass), captures
it as a CUDA graph the next time, and afterwards only copies the new inputs into the graph's
static buffers and replays it: two launches instead of hundreds. ``key`` names everything the
captured graph depends on besides the inputs (tensor addresses, shapes, Python numbers baked
into kernels such as 1 − α): a new key recaptures. ``fn`` must be free of host synchronisation
and return 0-d tensors of one dtype; they come back as views of one fresh tensor, so later
replays do not overwrite earlier metrics. Should a capture fail, ``fn`` runs eagerly from then
on, after one warning.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable

import torch

Update = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class GraphedUpdate:
    """Capture-once, replay-often wrapper of an update function (CUDA only)."""

    def __init__(self) -> None:
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key: Hashable = None
        self.warmed: set[Hashable] = set()
        self.failed = False
        self.static: dict[str, torch.Tensor] = {}
        self.out_names: list[str] = []
        self.out_vec: torch.Tensor | None = None

    def __call__(self, fn: Update, key: Hashable, inputs: dict[str, torch.Tensor],
                 warm_key: Hashable = None) -> dict[str, torch.Tensor]:
        if self.failed:
            return fn(inputs)
        if self.graph is not None and key == self.key:
            names = list(self.static)
            torch._foreach_copy_([self.static[k] for k in names], [inputs[k] for k in names])
            self.graph.replay()
        elif warm_key not in self.warmed:
            self.warmed.add(warm_key)
            return self._warm(fn, inputs)
        else:
            self.graph = None
            static = {k: v.detach().clone() for k, v in inputs.items()}
            g = torch.cuda.CUDAGraph()
            try:  # thread_local: the data feeder's host thread may pin memory meanwhile
                with torch.cuda.graph(g, capture_error_mode="thread_local"):
                    out = fn(static)
                    names = list(out)
                    vec = torch.stack([out[k] for k in names])
            except Exception as e:  # noqa: BLE001 - fall back to eager, once, loudly
                self.failed = True
                warnings.warn(f"CUDA graph capture of the solver update failed ({e}); running "
                              "it eagerly", RuntimeWarning, stacklevel=3)
                return fn(inputs)
            self.graph, self.key, self.static = g, key, static
            self.out_names, self.out_vec = names, vec
            g.replay()
        vals = self.out_vec.clone()  # type: ignore[union-attr]
        return dict(zip(self.out_names, vals.unbind()))

    @staticmethod
    def _warm(fn: Update, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``fn(inputs)`` on a side stream that waits for the current one and is waited for."""
        device = next(iter(inputs.values())).device
        cur = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(cur)
        with torch.cuda.stream(side):
            out = fn(inputs)
        cur.wait_stream(side)
        for v in out.values():  # made on the side stream, read on the current one
            v.record_stream(cur)
        return out
