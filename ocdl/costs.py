"""Terminal costs Φ(x_T, y) per sample, and the running costs L_t.

J(θ) = (1/S) Σ_s Φ(x_{s,T}, y_s) + (1/S) Σ_s Σ_t L_t(x_{s,t}, θ_t)   (DESIGN.md §1)

Terminal costs (each returns a vector of S per-sample values):

* ``cross_entropy``: Φ = −log softmax(x_T)_y;
* ``squared_hinge``: Φ = mean_c relu(1 − ŷ_c x_{T,c})² with ŷ = 2·onehot(y) − 1 ∈ {±1}^C
  (the paper's loss; the batch mean of Φ is mean(relu(1 − y·out)²));
* ``mse``: Φ = mean_c (x_{T,c} − ŷ_c)² with ŷ = onehot(y) for class labels, or y itself when
  it is a float tensor of the output's shape.

Running costs on controls enter J once (the 1/S and Σ_s cancel): λ‖θ‖₁ (``l1``, non-smooth:
solvers treat it by closed form or proximal step, see :meth:`ocdl.system.System.costates`) and
λ‖θ‖² (``l2``). ``state_l2`` adds (1/S) Σ_s λ‖x_{s,t}‖² on the input of stage t.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import ShapeError

Terminal = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _signed_onehot(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, out.shape[1]).to(out.dtype).mul_(2).sub_(1)


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y, reduction="none")


def squared_hinge(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dtype.is_floating_point:  # already ±1 targets
        target = y
    else:
        target = _signed_onehot(out, y)
    return torch.relu(1 - target * out).square().mean(dim=1)


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dtype.is_floating_point:
        target = y.reshape(out.shape)
    else:
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
    return (out - target).square().flatten(1).mean(dim=1)


TERMINALS: dict[str, Terminal] = {"cross_entropy": cross_entropy, "squared_hinge": squared_hinge,
                                  "mse": mse}


def check_terminal(name: str, out_shape: tuple[int, ...], where: str) -> None:
    """Class-label costs need a vector output (one score per class)."""
    if name in ("cross_entropy", "squared_hinge") and len(out_shape) != 1:
        raise ShapeError(f"{name} needs a vector of class scores as the last stage's output, got "
                         f"shape {list(out_shape)}; end the network with flatten and dense",
                         path=where)
