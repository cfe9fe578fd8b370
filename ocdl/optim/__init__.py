"""ocdl's solvers as ``torch.optim.Optimizer`` subclasses, for a user's own ``nn.Module`` in a
user's own training loop (DESIGN.md §1, §3).

    groups = ocdl.optim.groups(model, {"Linear": {"control": ocdl.Ternary(), "l1": 1e-7}})
    opt = ocdl.optim.EMSA(groups, lr=1e-3)          # lr: the real parameters' Adam
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()               # M = −∇J = −.grad
        opt.step()
    opt.end_epoch()                                   # 1 − α ← 0.95 (1 − α)

* :class:`EMSA` — E-MSA: closed-form argmax of the Hamiltonian against the running average M̄
  on binary, ternary and k-level sets; Adam on −H for real ones, or, given ``model=``, the
  inner maximisation of the augmented Hamiltonian (:mod:`.augmented`) from each layer's x_t and
  p_{t+1}, which hooks record (:mod:`.layer_taps`);
* :class:`MSA` — basic MSA: argmax of H (ρ = 0), gradient ascent on H for real sets;
* :class:`BinaryConnect`, :class:`TWN`, :class:`Latent` — latent real weights, θ = Q(W),
  straight-through Adam;
* :class:`Bop` — flip binary weights by a moving average of the gradient;
* :func:`groups` — param groups tagged with control sets by module type or name.

Each is a composition of the solver parts in :mod:`ocdl.solvers` (:mod:`.base` says what all of
them share: sets on param groups, M from ``.grad``, Adam on real parameters, state dicts).
"""
from .base import ControlOptimizer
from .bop import Bop
from .emsa import EMSA
from .groups import groups
from .latent import TWN, BinaryConnect, Latent
from .msa import MSA

__all__ = ["BinaryConnect", "Bop", "ControlOptimizer", "EMSA", "Latent", "MSA", "TWN", "groups"]
