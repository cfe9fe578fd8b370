"""BatchNorm with the statistics of the global batch of a data-parallel run (``run.sync_bn``).

Rank r holds the rows x_{s}, s ∈ B_r, of the global batch B = ∪_r B_r. Per channel c:

    n = Σ_r |B_r|·(spatial size),  μ_c = (1/n) Σ_r Σ_{s∈B_r} x_{s,c},
    σ²_c = (1/n) Σ_r Σ_{s∈B_r} (x_{s,c} − μ_c)²,  y = γ_c (x − μ_c)/√(σ²_c + ε) + β_c

as one process computes them on B (two passes, as ``F.batch_norm``; the sums are all-reduced).
The all-reduces are differentiable to any order (:class:`_SumOverRanks`: its backward sums the
incoming gradients over the ranks, by itself), so the reverse pass of Σ_r w_r J_r gives every
rank the costates of the global batch. Running statistics are updated as ``F.batch_norm`` does,
with the unbiased variance of n samples, identically on every rank.
"""
from __future__ import annotations

from typing import Any

import torch

#: the data-parallel group whose BatchNorm statistics are shared (None: each process its own)
_GROUP: Any = None


def enable(group: Any) -> None:
    """Share BatchNorm statistics over ``group``'s ranks (:mod:`ocdl.run.distributed`)."""
    global _GROUP
    _GROUP = group


def disable() -> None:
    global _GROUP
    _GROUP = None


def active() -> bool:
    return _GROUP is not None


class _SumOverRanks(torch.autograd.Function):
    """y = Σ_r t_r; its adjoint is the same sum of the incoming gradients (every rank's y
    feeds every rank's loss)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return _SumOverRanks.apply(g)  # itself differentiable: E-MSA's double backward


def _sum(t: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(t)


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None,
               running_var: torch.Tensor | None, weight: torch.Tensor | None,
               bias: torch.Tensor | None, momentum: float, eps: float) -> torch.Tensor:
    """Training-mode batch normalisation of ``x`` (N, C, …) over the global batch."""
    c = x.shape[1]
    dims = [0] + list(range(2, x.dim()))
    view = [1, c] + [1] * (x.dim() - 2)
    local = x.numel() // c if c else 0
    first = _sum(torch.cat([x.sum(dims), x.new_full((1,), float(local))]))
    n = first[c]
    mean = first[:c] / n
    centred = x - mean.view(view)
    var = _sum(centred.square().sum(dims)) / n
    y = centred * torch.rsqrt(var + eps).view(view)
    if weight is not None:
        y = y * weight.view(view)
    if bias is not None:
        y = y + bias.view(view)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var.detach() * (n / (n - 1.0).clamp(min=1.0))
            running_mean.mul_(1.0 - momentum).add_(mean.detach().to(running_mean.dtype),
                                                   alpha=momentum)
            running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.dtype),
                                                  alpha=momentum)
    return y
