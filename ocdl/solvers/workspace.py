"""Scratch buffers allocated once and reused every step, so that a solver's update allocates
nothing (and a CUDA graph that captures it reads and writes the same memory every replay)."""
from __future__ import annotations

import torch


class Workspace:
    """Scratch buffers allocated once and reused every step (keyed by name and tag)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple[str, str], torch.Tensor] = {}

    def get(self, name: str, tag: str, like: torch.Tensor) -> torch.Tensor:
        b = self._bufs.get((name, tag))
        if b is None or b.shape != like.shape or b.dtype != like.dtype or b.device != like.device:
            b = torch.empty_like(like, memory_format=torch.contiguous_format)
            self._bufs[(name, tag)] = b
        return b

    def flat(self, tag: str, n: int, like: torch.Tensor) -> torch.Tensor:
        """A 1-D buffer of ``n`` entries with ``like``'s dtype and device."""
        b = self._bufs.get(("*", tag))
        if b is None or b.numel() != n or b.dtype != like.dtype or b.device != like.device:
            b = torch.empty(n, dtype=like.dtype, device=like.device)
            self._bufs[("*", tag)] = b
        return b

    def clear(self) -> None:
        self._bufs.clear()
