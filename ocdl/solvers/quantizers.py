"""Quantizers: maps from latent real weights W to a finite control set, θ = Q(W).

The latent-weight solvers (:mod:`ocdl.solvers.latent_weights`) keep W in their state, run the
forward pass with θ = Q(W) and pass the gradient straight through Q (∂J/∂W := ∂J/∂θ = −M). A
quantizer is found by name (:data:`QUANTIZERS`):

* ``sign`` (BinaryConnect, Courbariaux et al. 2015): θ = sign(W), sign(0) = +1; with
  ``stochastic`` θ = +1 with probability hard_sigmoid(W) = clip((W+1)/2, 0, 1), else −1
  (:meth:`Sign.sample_`, drawn before each forward pass);
* ``ternary-threshold`` (TWN, Li, Zhang & Liu 2016, eq. 10): per layer Δ = ``delta_factor``·mean|W|
  (0.7), θ = sign(W)·[|W| > Δ] ∈ {−1, 0, +1}, and the scale α = mean{|W_ij| : |W_ij| > Δ} that
  TWN multiplies θ by; the System's ternary set is {−1, 0, +1}, so α is left to the batchnorm that
  must follow (``needs_batchnorm``) and reported as the metric ``scale/<stage>``;
* ``nearest``: θ = the level of the control's finite set {l_1 < … < l_K} nearest to W (any set:
  binary, ternary, ``levels``), a tie between two levels going to the lower one: θ = l_k for
  (l_{k−1} + l_k)/2 < W ≤ (l_k + l_{k+1})/2.

:meth:`Quantizer.requantize_` writes θ ← Q(W) in place after a step of W and counts the entries
it changed (flips) and the non-zero ones (None for sets without 0), each quantizer in the way
that suits its set (a dot product for ±1, norms of Δθ ∈ {0, ±1, ±2} for ternary).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from ..system import System
from .settings import Part, Require, positive

Scratch = Callable[[str], list[torch.Tensor]]
"""``scratch(tag)``: one buffer shaped like each θ, the same ones every step for a tag."""


class Quantizer:
    """θ = Q(W) for the controls of the set kinds ``kinds``."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    needs_batchnorm: ClassVar[bool] = False
    """True when Q drops a per-layer scale that a following batchnorm must absorb."""

    def __init__(self, s: Mapping[str, Any]):
        self.s = dict(s)

    def setup(self, system: System, names: Sequence[str]) -> None:
        """Per-system set-up (e.g. the levels of each control)."""

    def quantize_(self, theta: list[torch.Tensor], latent: list[torch.Tensor],
                  scratch: Scratch) -> dict[str, torch.Tensor]:
        """θ ← Q(W) in place; returns per-layer extras (1-d tensors by name, e.g. ``scale``)."""
        raise NotImplementedError

    def requantize_(self, theta: list[torch.Tensor], latent: list[torch.Tensor],
                    scratch: Scratch, numel: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """θ ← Q(W) in place after a step of W: (flips per layer, non-zeros per layer or None
        when the set has no 0, extras)."""
        old = scratch("old")
        torch._foreach_copy_(old, theta)
        extras = self.quantize_(theta, latent, scratch)
        flips = torch.stack([o.ne(t).sum().to(t.dtype) for o, t in zip(old, theta)])
        nnz = torch.stack([t.ne(0).sum().to(t.dtype) for t in theta])
        return flips, nnz, extras


def sign_into_(theta: list[torch.Tensor], latent: list[torch.Tensor]) -> None:
    """θ ← sign(W) with sign(0) = +1, in place (two foreach passes after a comparison)."""
    for th, w in zip(theta, latent):
        torch.ge(w, 0, out=th)
    torch._foreach_mul_(theta, 2.0)
    torch._foreach_sub_(theta, 1.0)


class Sign(Quantizer):
    """sign(W) (binary); ``stochastic``: +1 with probability clip((W+1)/2, 0, 1)."""

    name = "sign"
    kinds = ("binary",)

    def quantize_(self, theta, latent, scratch):
        sign_into_(theta, latent)
        return {}

    def requantize_(self, theta, latent, scratch, numel):
        new = scratch("new")
        sign_into_(new, latent)
        # θ_new·θ_old = N − 2·flips (against the forward pass's θ)
        agree = torch.stack([torch.dot(a.reshape(-1), b.reshape(-1)) for a, b in zip(new, theta)])
        flips = (numel - agree) / 2
        torch._foreach_copy_(theta, new)
        return flips, None, {}

    @staticmethod
    def sample_(theta: list[torch.Tensor], latent: list[torch.Tensor],
                gen: torch.Generator) -> None:
        """θ ← +1 with probability clip((W+1)/2, 0, 1), else −1, in place (u ~ U(−1, 1) < W)."""
        for th, w in zip(theta, latent):
            u = torch.rand(w.shape, generator=gen, device=w.device, dtype=w.dtype)
            torch.lt(u.mul_(2).sub_(1), w, out=th)
        torch._foreach_mul_(theta, 2.0)
        torch._foreach_sub_(theta, 1.0)


def ternarise_(theta: list[torch.Tensor], latent: list[torch.Tensor], factor: float,
               work: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """θ ← sign(W)·[|W| > Δ] with Δ = factor·mean|W| per layer, in place; returns (Δ, α) per
    layer (α = mean of |W| above Δ, 0 for an all-zero layer). ``work`` is scratch like θ."""
    delta = torch.stack([n1 * (factor / w.numel())
                         for n1, w in zip(torch._foreach_norm(latent, 1), latent)])
    for i, (th, w, b) in enumerate(zip(theta, latent, work)):
        torch.gt(w, delta[i], out=th)
        torch.lt(w, -delta[i], out=b)
    torch._foreach_sub_(theta, work)
    count = torch.stack(torch._foreach_norm(theta, 1))
    mass = torch.stack([torch.dot(w.reshape(-1), t.reshape(-1)) for w, t in zip(latent, theta)])
    alpha = mass / count.clamp_min(1)
    return delta, alpha


class TernaryThreshold(Quantizer):
    """TWN's sign(W)·[|W| > ``delta_factor``·mean|W|]; the scale α is left to batchnorm."""

    name = "ternary-threshold"
    kinds = ("ternary",)
    needs_batchnorm = True

    def quantize_(self, theta, latent, scratch):
        _, alpha = ternarise_(theta, latent, self.s["delta_factor"], scratch("b"))
        return {"scale": alpha}

    def requantize_(self, theta, latent, scratch, numel):
        old = scratch("old")
        torch._foreach_copy_(old, theta)
        extras = self.quantize_(theta, latent, scratch)
        torch._foreach_sub_(old, theta)  # −Δθ ∈ {0, ±1, ±2}
        n1 = torch.stack(torch._foreach_norm(old, 1))
        n2 = torch.stack(torch._foreach_norm(old, 2)).square()
        nnz = torch.stack(torch._foreach_norm(theta, 1))
        return 1.5 * n1 - 0.5 * n2, nnz, extras


class Nearest(Quantizer):
    """The nearest level of each control's finite set (ties to the lower level)."""

    name = "nearest"
    kinds = ("binary", "ternary", "levels")

    def setup(self, system, names):
        self.levels = [[float(v) for v in system.control[n].cset.values] for n in names]

    def quantize_(self, theta, latent, scratch):
        with torch.no_grad():
            for th, w, lv in zip(theta, latent, self.levels):
                th.fill_(lv[0])
                for lo, hi in zip(lv, lv[1:]):  # ascending midpoints: the last one passed wins
                    th.masked_fill_(w > (lo + hi) / 2, hi)
        return {}


QUANTIZERS: dict[str, type[Quantizer]] = {q.name: q for q in (Sign, TernaryThreshold, Nearest)}


class QuantizerSettings(Part):
    """Block ``quantizer``: ``name`` (:data:`QUANTIZERS`), ``stochastic`` (sign only) and
    ``delta_factor`` (ternary-threshold only: Δ = delta_factor·mean|W|)."""

    DEFAULTS = {"name": "sign", "stochastic": False, "delta_factor": 0.7}
    DOCS = {"name": "θ = Q(W): sign, ternary-threshold, or nearest (the nearest level of the "
                    "control's set)",
            "stochastic": "stochastic binarisation (hard sigmoid) instead of the sign",
            "delta_factor": "TWN's threshold Δ = delta_factor·mean|W|"}
    CHOICES = {"name": tuple(QUANTIZERS)}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        positive(s, require, "delta_factor")
        require(not s["stochastic"] or s["name"] == "sign", "stochastic",
                "draws the sign quantizer's θ; it needs the sign quantizer")

    @staticmethod
    def build(s: Mapping[str, Any]) -> Quantizer:
        """The quantizer the block names."""
        return QUANTIZERS[s["name"]](s)
