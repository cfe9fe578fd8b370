"""Latent-weight optimizers — BinaryConnect, TWN and any quantizer — as
``torch.optim.Optimizer`` subclasses (:mod:`ocdl.solvers.latent_weights`).

Each finite-set parameter keeps a real latent copy W (``self.state[p]["latent"]``) and holds
θ = Q(W) itself, so the forward pass, evaluation and ``model.state_dict()`` see the discrete
network. W starts as the parameter's value when the optimizer is built (the module's own
initialisation), and θ ← Q(W) is written then. After ``loss.backward()`` the straight-through
gradient reaches W: with M = −∇J = −``.grad``, one Adam step ascends M − λ sign θ (λ the group's
``l1``, for sets with 0; :func:`ocdl.solvers.latent_weights.straight_through_`) with the
group's ``lr`` times the per-parameter ``lr_scale`` (``glorot``: BinaryConnect's 1/H,
H = sqrt(1.5/(fan_in + fan_out))), L2 ``weight_decay``; then W is clipped to [−clip, clip]
(``clip``: None for none) and θ ← Q(W) (:mod:`ocdl.solvers.quantizers`):

* :class:`BinaryConnect` (Courbariaux et al. 2015): Q = sign (sign(0) = +1), clip 1, glorot
  rates — the ``binaryconnect`` preset;
* :class:`TWN` (Li, Zhang & Liu 2016): Q = sign(W)·[|W| > Δ], Δ = ``delta_factor``·mean|W| per
  parameter (0.7). TWN's scale α = mean{|W| > Δ} is dropped, as in ocdl's ``twn`` solver: every
  ternary layer must be followed by a batchnorm, which absorbs it (the optimizer cannot see the
  network, so this is the user's to ensure);
* :class:`Latent`: any quantizer by name, e.g. ``nearest`` for any ``ocdl.Levels`` set.

Real parameters take Adam with their group's ``lr`` (:mod:`ocdl.optim.base`).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError
from ..solvers.discrete_weights import FlipMetrics
from ..solvers.first_order import adam_init, adam_step
from ..solvers.latent_weights import LatentWeights as LatentPart
from ..solvers.latent_weights import glorot_h, straight_through_
from ..solvers.quantizers import QUANTIZERS, QuantizerSettings
from .base import REAL_DEFAULTS, ControlOptimizer

LR_SCALES = ("none", "glorot")


class Latent(ControlOptimizer):
    """Latent weights W, θ = Q(W), straight-through Adam on W (see the module docstring)."""

    aliases = {"quantizer.name": "quantizer", "quantizer.delta_factor": "delta_factor",
               "latent.clip": "clip"}

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 l1: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, lr_scale: str = "none", clip: float | None = None,
                 quantizer: str = "nearest", delta_factor: float = 0.7, seed: int = 0):
        if quantizer not in QUANTIZERS:
            raise SolverError(f"{self.title()}: quantizer must be one of "
                              f"{', '.join(QUANTIZERS)}, got {quantizer!r}")
        qs = {**QuantizerSettings.DEFAULTS, "name": quantizer, "delta_factor": delta_factor}
        self.require("quantizer", qs, QuantizerSettings)
        self.require("latent", {"init": "theta", "clip": clip}, LatentPart)
        if lr_scale not in LR_SCALES:
            raise SolverError(f"{self.title()}: lr_scale must be one of {', '.join(LR_SCALES)}, "
                              f"got {lr_scale!r}")
        self._quantizer = QuantizerSettings.build(qs)
        self.supports = QUANTIZERS[quantizer].kinds + ("real", "box")
        self._clip = clip
        super().__init__(params, {**REAL_DEFAULTS, "lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "control": control, "l1": l1,
                                  "lr_scale": lr_scale}, put_in="quantize", seed=seed)
        self._quantizer.setup(self._view, self._view.names(True))

    def _admit(self, group: dict[str, Any], names: list[str]) -> None:
        """W ← the parameter's value, then θ ← Q(W)."""
        if group["lr_scale"] not in LR_SCALES:
            raise SolverError(f"{self.title()}: lr_scale must be one of {', '.join(LR_SCALES)}, "
                              f"got {group['lr_scale']!r}")
        params = list(group["params"])
        with torch.no_grad():
            latent = [p.detach().clone(memory_format=torch.contiguous_format) for p in params]
            for p, w in zip(params, latent):
                self.state[p]["latent"] = w
            self._quantize_into(names, params, group["control"], self._quantizer.name,
                                self._quantizer.s, latent)

    def _groups_changed(self) -> None:
        self._quantizer.setup(self._view, self._view.names(True))

    def _discrete_step(self, items, M) -> dict[str, torch.Tensor]:
        """Straight-through Adam on W per group and rate scale, clip, then θ ← Q(W)."""
        view = self._view
        names = [n for n, _, _ in items]
        g = {n: straight_through_(M[n], p.detach(), view.control[n].cset, view.control[n].l1)
             for n, p, _ in items}
        batches: dict[tuple[int, float], tuple[dict[str, Any], list[tuple[str, torch.Tensor]]]] = {}
        for n, p, grp in items:
            scale = 1.0 / glorot_h(tuple(p.shape)) if grp["lr_scale"] == "glorot" else 1.0
            batches.setdefault((id(grp), scale), (grp, []))[1].append((n, p))
        for (_, scale), (grp, members) in batches.items():
            latent, moments = {}, {"m": {}, "v": {}, "step": {}}
            for n, p in members:
                st = self.state[p]
                if "exp_avg" not in st:
                    a = adam_init({n: st["latent"]})
                    st.update(exp_avg=a["m"][n], exp_avg_sq=a["v"][n], step=a["step"][n])
                latent[n] = st["latent"]
                moments["m"][n], moments["v"][n] = st["exp_avg"], st["exp_avg_sq"]
                moments["step"][n] = st["step"]
            adam_step(latent, {n: g[n] for n, _ in members}, moments,
                      lr=float(grp["lr"]) * scale, betas=tuple(grp["betas"]),
                      eps=float(grp["eps"]), weight_decay=float(grp["weight_decay"]),
                      maximize=True)
        theta = [p.detach() for _, p, _ in items]
        latent_list = [self.state[p]["latent"] for _, p, _ in items]
        if self._clip is not None:
            torch._foreach_clamp_min_(latent_list, -float(self._clip))
            torch._foreach_clamp_max_(latent_list, float(self._clip))
        fm = self._flip_metrics(names)
        flips, nnz, extras = self._quantizer.requantize_(
            theta, latent_list, lambda tag: [self._work.get(n, tag, t)
                                             for n, t in zip(names, theta)], fm.numel)
        metrics = fm(flips, nnz)
        for what, per in extras.items():
            for i, n in enumerate(names):
                metrics[f"{what}/{fm.keys[n]}"] = per[i]
        return metrics

    def _flip_metrics(self, names: list[str]) -> FlipMetrics:
        key = tuple(names)
        if getattr(self, "_fm_key", None) != key:
            self._fm, self._fm_key = FlipMetrics(self._view, names), key
        return self._fm


class BinaryConnect(Latent):
    """BinaryConnect: θ = sign(W), W clipped to [−1, 1], glorot-scaled straight-through Adam."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 lr_scale: str = "glorot", clip: float | None = 1.0, seed: int = 0):
        super().__init__(params, lr, control=control, betas=betas, eps=eps, lr_scale=lr_scale,
                         clip=clip, quantizer="sign", seed=seed)


class TWN(Latent):
    """TWN: θ = sign(W)·[|W| > 0.7·mean|W|], straight-through Adam; BatchNorm absorbs α."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, *, control: ControlSet = Real(),
                 l1: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, delta_factor: float = 0.7, seed: int = 0):
        super().__init__(params, lr, control=control, l1=l1, betas=betas, eps=eps,
                         weight_decay=weight_decay, quantizer="ternary-threshold",
                         delta_factor=delta_factor, seed=seed)
