"""The closed-form argmax of :mod:`.closed_forms`, batched over the layers of one set and in
place: the fast path of :class:`ocdl.solvers.hamiltonian_argmax.FiniteSetArgmax`.

Same maths (DESIGN.md §1), arranged for speed, in two forms with the same results (bit for bit
in float64; in float32 the threshold τ = ρ_k + λ may round differently at a near-tie):

* ``chunk=None`` (accelerators): every pass is a ``torch._foreach_*`` op over all layers of one
  set kind, or an ``out=`` / in-place op into full-size buffers allocated once, so a step is a
  fixed, small number of kernel launches;
* ``chunk=n`` (CPU): each layer is processed in slices of n entries, all passes of one slice
  back to back with scratch buffers of n entries, so the intermediates stay in cache and the
  weights, M̄ and M are streamed from memory twice per step (once for ρ_k, once for the update)
  instead of once per elementwise op — about half the time of the foreach form on a 2-core CPU.

Either way ρ_k is a tensor reduction. The accelerator form reads nothing back to the host (no
``.item()``), so a CUDA step never waits; the CPU form turns the per-layer ρ_k and τ into Python
numbers between its two sweeps, which on a CPU costs nothing and lets the kernels take scalars.
The step also returns its metrics, computed from the same buffers:

* ΔH = Σ_t [H_t(θ_new) − H_t(θ_old)] at the old x, p, computed as Σ M·Δθ − λ(‖θ_new‖₁−‖θ_old‖₁)
  − λ₂‖Δθ‖², with M the current batch's Σ_s ∇_θ H. This is exact for stages whose map is linear
  in θ (dense, conv: p·f_t(x, θ) is linear in θ and the l1/l2 costs are accounted exactly).
* flips: entries changed (accelerator form, ternary: from Δθ ∈ {0, ±1, ±2} as
  1.5‖Δθ‖₁ − 0.5‖Δθ‖², a count without a comparison pass); nonzero: entries of θ_new ≠ 0.

Binary, per layer, with q = M̄θ:  ρ_k = ρ·max(0, max(−q))  (sign(M̄) ≠ θ ⇔ q < 0, or M̄ = 0 with
θ = −1, which adds |M̄| = 0 to the max), and θ flips where q < −ρ_k (⇔ sign(M̄) ≠ θ and
|M̄| > ρ_k; at M̄ = 0 nothing flips since ρ_k ≥ 0).

Ternary, per layer:  ρ_k = ρ·max(0, max(|M̄| − relu(q)))  (|M̄| where θ = 0 or disagrees,
0 where it agrees), d = M̄ + 2ρ_kθ, τ = ρ_k + λ, θ ← [d > τ] − [d < −τ].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...controls import Levels
from . import closed_forms
from .keep_units import UnitBest, keep_units_, unit_best


@dataclass
class ArgmaxResult:
    """Per-layer ρ_k, flipped entries, non-zero entries (``None`` for binary: always all), and
    the total Hamiltonian gain ΔH of the group (0-d)."""

    rho_k: torch.Tensor
    flips: torch.Tensor
    nonzero: torch.Tensor | None
    dH: torch.Tensor


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def binary_step_(theta: list[torch.Tensor], mbar: list[torch.Tensor], M: list[torch.Tensor],
                 w: float, rho: torch.Tensor, A: list[torch.Tensor], l2: torch.Tensor,
                 chunk: int | None = None) -> ArgmaxResult:
    """Binary E-MSA update of all layers in place: M̄ ← lerp(M̄, M, w) (skipped when ``mbar is
    M``), ρ_k, θ ← sign(M̄) where |M̄| > ρ_k. ``rho`` is 0-d, ``l2`` per layer. ``A`` holds
    scratch buffers: one per layer shaped like θ, or (``chunk``) one flat buffer of ``chunk``
    entries."""
    if chunk:
        return _binary_chunked(theta, mbar, M, w, rho, A[0], l2, chunk)
    with torch.no_grad():
        if mbar is not M:
            torch._foreach_lerp_(mbar, M, w)
        for mb, th, a in zip(mbar, theta, A):
            torch.mul(mb, th, out=a)                           # q = M̄θ
        qmin = torch.stack([a.amin() for a in A])
        rk = rho * qmin.neg().clamp_min(0)                     # ρ·max(0, max(−q))
        nrk = rk.neg()
        for i, a in enumerate(A):
            torch.lt(a, nrk[i], out=a)                         # flip mask (1.0 / 0.0)
        flips = torch.stack(torch._foreach_norm(A, 1))
        torch._foreach_mul_(A, theta)                          # θ·mask = −Δθ/2
        lin = torch.stack([_flat_dot(m, a) for m, a in zip(M, A)])
        torch._foreach_add_(theta, A, alpha=-2.0)              # θ ← θ − 2θ·mask
        dH = (-2.0 * lin - 4.0 * l2 * flips).sum()
    return ArgmaxResult(rk, flips, None, dH)


def _slices(t: torch.Tensor, n: int, whole_rows: bool = False) -> list[torch.Tensor]:
    """Flat slices of ``t`` of ``n`` entries; with ``whole_rows`` of the most whole rows
    t[u, ...] that fit in n (at least one row)."""
    f = t.view(-1)
    if whole_rows:
        r = f.numel() // t.shape[0]
        n = max(1, n // r) * r
    return [f[i:i + n] for i in range(0, f.numel(), n)]


def _binary_chunked(theta, mbar, M, w, rho, A, l2, n):
    rks, flips, lins = [], [], []
    with torch.no_grad():
        for th_, mb_, m_ in zip(theta, mbar, M):
            parts = list(zip(_slices(th_, n), _slices(mb_, n), _slices(m_, n)))
            avg = mb_ is not m_
            mins = []
            for t, mb, m in parts:
                a = A[:t.numel()]
                if avg:
                    mb.lerp_(m, w)
                torch.mul(mb, t, out=a)
                mins.append(a.amin())
            rk = rho * torch.stack(mins).amin().neg().clamp_min(0)
            nrk = -float(rk)  # the CPU form only: a Python number (no device to wait for)
            red = []
            for t, mb, m in parts:
                a = A[:t.numel()]
                torch.mul(mb, t, out=a)
                torch.lt(a, nrk, out=a)                        # flip mask
                red.append(a.sum())
                a.mul_(t)                                      # −Δθ/2
                red.append(torch.dot(m, a))
                t.add_(a, alpha=-2.0)
            r = torch.stack(red).view(-1, 2).sum(0)
            rks.append(rk)
            flips.append(r[0])
            lins.append(r[1])
        rk, fl, lin = torch.stack(rks), torch.stack(flips), torch.stack(lins)
        dH = (-2.0 * lin - 4.0 * l2 * fl).sum()
    return ArgmaxResult(rk, fl, None, dH)


def ternary_step_(theta: list[torch.Tensor], mbar: list[torch.Tensor], M: list[torch.Tensor],
                  w: float, rho: torch.Tensor, A: list[torch.Tensor], B: list[torch.Tensor],
                  lam: torch.Tensor, l2: torch.Tensor, chunk: int | None = None,
                  C: list[torch.Tensor] | None = None,
                  keep_units: list[bool] | None = None) -> ArgmaxResult:
    """Ternary E-MSA update of all layers in place (``lam``, ``l2`` per layer, ``rho`` 0-d).
    Scratch ``A``, ``B`` as for :func:`binary_step_`.

    With a third scratch ``C`` ties keep θ (as :func:`closed_forms.levels_argmax`; used by basic
    MSA): where |d| = τ the levels 0 and sign(d) tie and beat the third, so θ is kept when it is
    one of them (θ·d ≥ 0), else 0 — θ_new = [d > τ] − [d < −τ] + θ·[|d| = τ]·[θd ≥ 0].

    ``keep_units`` (per layer) restricts a layer's argmax to θ whose output units u (rows
    θ[u, ...]) each keep a non-zero entry: see :func:`keep_units_`. In the sliced form such a
    layer is cut into slices of whole rows (at least one row, so the flat scratch must hold a
    row). Not with ``C``: a kept tie would hide a dead row from :func:`keep_units_`."""
    if C and keep_units and any(keep_units):
        raise ValueError("keep_units does not combine with ties keeping θ (C)")
    if chunk:
        return _ternary_chunked(theta, mbar, M, w, rho, A[0], B[0], lam, l2, chunk,
                                C[0] if C else None, keep_units)
    with torch.no_grad():
        if mbar is not M:
            torch._foreach_lerp_(mbar, M, w)
        for mb, th, a, b in zip(mbar, theta, A, B):
            torch.mul(mb, th, out=a)                           # q = M̄θ
            torch.abs(mb, out=b)
        torch._foreach_clamp_min_(A, 0.0)
        torch._foreach_sub_(B, A)                              # |M̄| − relu(q)
        gmax = torch.stack(torch._foreach_max(B))
        rk = rho * gmax.clamp_min(0)
        tau = rk + lam
        ntau = tau.neg()
        two_rk = 2.0 * rk
        best: dict[int, UnitBest] = {}
        for i, (mb, th, a, b) in enumerate(zip(mbar, theta, A, B)):
            torch.addcmul(mb, th, two_rk[i], out=a)            # d = M̄ + 2ρ_kθ
            if keep_units and keep_units[i]:
                best[i] = unit_best(a)
            torch.gt(a, tau[i], out=b)
            if C:
                _keep_ties(a, th, tau[i], b, C[i])
            torch.lt(a, ntau[i], out=a)
        torch._foreach_sub_(B, A)                              # θ_new
        for i, ub in best.items():
            keep_units_(B[i], ub, tau[i])
        for th, a, b in zip(theta, A, B):
            torch.sub(b, th, out=a)                            # Δθ
        lin = torch.stack([_flat_dot(m, a) for m, a in zip(M, A)])
        n1 = torch.stack(torch._foreach_norm(A, 1))
        n2 = torch.stack(torch._foreach_norm(A, 2)).square()
        nnz_new = torch.stack(torch._foreach_norm(B, 2)).square().round()
        nnz_old = torch.stack(torch._foreach_norm(theta, 2)).square().round()
        torch._foreach_copy_(theta, B)
        flips = (1.5 * n1 - 0.5 * n2).round()
        dH = (lin - lam * (nnz_new - nnz_old) - l2 * n2).sum()
    return ArgmaxResult(rk, flips, nnz_new, dH)


def _keep_ties(d: torch.Tensor, th: torch.Tensor, tau: torch.Tensor | float, b: torch.Tensor,
               c: torch.Tensor) -> None:
    """b += θ·[|d| = τ]·[θd ≥ 0] (b holds [d > τ]; the caller subtracts [d < −τ] after)."""
    torch.mul(d, th, out=c)
    torch.ge(c, 0, out=c)
    c.mul_(th)
    c.mul_(torch.eq(d.abs(), tau))
    b.add_(c)


def _ternary_chunked(theta, mbar, M, w, rho, A, B, lam, l2, n, C=None, keep_units=None):
    rks, sums = [], []
    with_l2 = bool((l2 != 0).any()) if l2.device.type == "cpu" else True
    with torch.no_grad():
        for i, (th_, mb_, m_) in enumerate(zip(theta, mbar, M)):
            keep = bool(keep_units and keep_units[i])
            exact = keep or C is not None  # count θ_new's non-zeros after the corrections
            row = th_.numel() // th_.shape[0] if keep else 0
            parts = list(zip(*(_slices(x, n, keep) for x in (th_, mb_, m_))))
            avg = mb_ is not m_
            mx = []
            for t, mb, m in parts:
                k = t.numel()
                a, b = A[:k], B[:k]
                if avg:
                    mb.lerp_(m, w)
                torch.abs(mb, out=b)
                torch.addcmul(b, mb, t, value=-1.0, out=a)     # |M̄| − q
                torch.minimum(a, b, out=a)                     # = |M̄| − relu(q)
                mx.append(a.max())
            rk = rho * torch.stack(mx).max().clamp_min(0)
            # the CPU form only: scalars as Python numbers (no device to wait for; faster kernels)
            rk_f = float(rk)
            tau = rk_f + float(lam[i])
            ntau = -tau
            red = []
            for t, mb, m in parts:
                k = t.numel()
                a, b = A[:k], B[:k]
                torch.add(mb, t, alpha=2.0 * rk_f, out=a)      # d = M̄ + 2ρ_kθ
                if keep:
                    best = unit_best(a.view(-1, row))
                torch.gt(a, tau, out=b)
                if C is not None:
                    _keep_ties(a, t, tau, b, C[:k])
                torch.lt(a, ntau, out=a)
                if not exact:
                    red += [b.sum(), a.sum()]                  # new +1s, new −1s
                b.sub_(a)                                      # θ_new
                if keep:
                    keep_units_(b.view(-1, row), best, tau)
                if exact:                                      # b held corrections
                    red += [torch.dot(b, b), torch.zeros_like(red[-1] if red else b.sum())]
                torch.ne(b, t, out=a)                          # changed entries
                red += [a.sum(), torch.dot(m, b), torch.dot(m, t), torch.dot(t, t)]
                if with_l2:
                    red.append(torch.dot(b, t))
                t.copy_(b)
            rks.append(rk)
            sums.append(torch.stack(red).view(-1, 7 if with_l2 else 6).sum(0))
        rk = torch.stack(rks)
        s = torch.stack(sums)
        up, down, flips, mb_new, mb_old, nnz_old = s[:, :6].unbind(1)
        nnz_new = up + down
        # ‖Δθ‖² = ‖θ_new‖² + ‖θ_old‖² − 2 θ_new·θ_old, needed for the l2 correction only
        n2 = nnz_new + nnz_old - 2 * s[:, 6] if with_l2 else torch.zeros_like(flips)
        dH = (mb_new - mb_old - lam * (nnz_new - nnz_old) - l2 * n2).sum()
    return ArgmaxResult(rk, flips, nnz_new, dH)


def levels_step_(csets: list[Levels], theta: list[torch.Tensor], mbar: list[torch.Tensor],
                 M: list[torch.Tensor], w: float, rho: torch.Tensor, lam: list[closed_forms.Scalar],
                 l2: list[float]) -> ArgmaxResult:
    """Any finite sets, one layer at a time with :func:`closed_forms.levels_argmax` (penalty ρ_k).
    Binary and ternary layers passed here use the general argmax too (ties keep θ)."""
    rks, flips, nnzs, dHs = [], [], [], []
    with torch.no_grad():
        if mbar is not M:
            torch._foreach_lerp_(mbar, M, w)
        for cs, th, mb, m, lm, q in zip(csets, theta, mbar, M, lam, l2):
            rk = closed_forms.rho_k(mb, th, rho, cs.values)
            new = closed_forms.levels_argmax(mb, th, cs.values, rk, lm)
            d = new - th
            flips.append((d != 0).sum().to(th.dtype))
            nnzs.append((new != 0).sum().to(th.dtype))
            dHs.append(_flat_dot(m, d) - lm * (new.abs().sum() - th.abs().sum())
                       - q * d.square().sum())
            th.copy_(new)
            rks.append(rk)
    return ArgmaxResult(torch.stack(rks), torch.stack(flips), torch.stack(nnzs),
                      torch.stack(dHs).sum())
