"""The closed-form maximisers of the Hamiltonian over finite control sets (DESIGN.md §1).

For a stage whose map f_t is linear in its weight (dense, conv), Σ_s H_t is linear in θ with
gradient M, so θ_t ← argmax_θ Σ_s H_t − λ‖θ‖₁ − ρ_k(θ − θ_ij)² decouples into one scalar problem
per entry, with M̄ the running average of M (E-MSA, :mod:`ocdl.solvers.running_average`) or M
itself (basic MSA, ρ = 0):

* ρ_k = ρ · max{ |M̄_ij| : sign(M̄_ij) ≠ θ_ij } per layer (sign(0) = +1, max ∅ = 0);
* binary {−1,+1}: θ_ij ← sign(M̄_ij) where |M̄_ij| > ρ_k, else unchanged;
* ternary {−1,0,+1}: θ ← +1 if M̄ > ρ_k(1−2θ) + λ; −1 if M̄ < −ρ_k(1+2θ) − λ; else 0;
* any finite set of levels: θ ← argmax_l M̄ l − λ|l| − ρ_k(l − θ_ij)², ties keep θ_ij;
* with the keep-units constraint (:mod:`.keep_units`) a ternary row never ends all zero.

:mod:`.closed_forms` holds the readable elementwise forms, :mod:`.batched` the same updates
batched over the layers of one set, in place and without host synchronisation (the fast path),
and :class:`FiniteSetArgmax` applies them to a system's controls and reports the metrics every
discrete solver reports: ``flips/<stage>`` (fraction of entries changed), ``nonzero/<stage>``
(fraction of non-zero entries after the step), ``flips`` and ``nonzero`` over all discrete
entries, and ``rho_k/max`` / ``rho_k/mean`` over layers. A metric is keyed by stage name, or by
control name where a stage has several discrete controls.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from ...system import System
from ..settings import Part
from ..workspace import Workspace
from . import batched
from .batched import ArgmaxResult


class ArgmaxConstraint(Part):
    """Setting ``keep_units`` (flat ``keep_units``): the argmax keeps a non-zero entry in every
    output unit of a ternary dense/conv weight (:mod:`.keep_units`)."""

    DEFAULTS = {"keep_units": False}
    DOCS = {"keep_units": "every output unit of a ternary dense/conv weight keeps a non-zero "
                          "entry, so that none dies"}
    CHOICES = {"keep_units": (False, True)}


FINITE_KINDS = ("binary", "ternary", "levels")
"""The finite control-set kinds these maximisers handle."""

CPU_CHUNK = 1 << 19
"""Slice length of the CPU form: 2 MB float32 scratch buffers, which stay in a CPU's cache."""


def metric_keys(system: System, names: Sequence[str]) -> dict[str, str]:
    """control name → metric suffix (the stage name unless the stage has several)."""
    per_stage = Counter(system.control[n].stage for n in names)
    return {n: (system.control[n].stage if per_stage[system.control[n].stage] == 1 else n)
            for n in names}


class FiniteSetArgmax:
    """θ_t ← the closed-form argmax for every finite-set control ``names`` of ``system``, the
    controls grouped by set kind (binary / ternary / other) so that each group is updated at once.

    ``ties_keep`` makes the ternary closed form keep θ at exact ties (basic MSA) instead of the
    paper's rule (0 at a tie); binary layers keep θ at ties either way, other finite sets always.
    ``chunk`` selects the batched form (:mod:`.batched`): slices of ``chunk`` entries,
    or ``None`` for whole-tensor foreach passes; the default, ``"auto"``, slices on the CPU
    (:data:`CPU_CHUNK`) and uses foreach passes on accelerators.

    ``keep_units`` keeps a non-zero entry in every output unit of each ternary weight of two or
    more dimensions (:func:`.keep_units.keep_units_`); on the CPU those layers are cut
    into slices of whole rows.
    """

    def __init__(self, system: System, names: Sequence[str], *, ties_keep: bool = False,
                 chunk: int | None | str = "auto", keep_units: bool = False):
        self.names = list(names)
        self.binary = [n for n in self.names if system.control[n].cset.kind == "binary"]
        self.ternary = [n for n in self.names if system.control[n].cset.kind == "ternary"]
        self.ties_keep = ties_keep
        taken = set(self.binary) | set(self.ternary)
        self.levels = [n for n in self.names if n not in taken]
        self.order = self.binary + self.ternary + self.levels
        self.keys = metric_keys(system, self.names)
        dev, dt = system.device, system.dtype

        def vec(ns: list[str], attr: str) -> torch.Tensor:
            return torch.tensor([getattr(system.control[n], attr) for n in ns], device=dev,
                                dtype=dt)

        self.l2_b = vec(self.binary, "l2")
        self.lam_t, self.l2_t = vec(self.ternary, "l1"), vec(self.ternary, "l2")
        self.numel = torch.tensor([system.control[n].numel for n in self.order], device=dev,
                                  dtype=dt)
        self.total = float(sum(system.control[n].numel for n in self.order))
        self.work = Workspace()
        if chunk == "auto":
            chunk = CPU_CHUNK if system.device.type == "cpu" else None
        self.chunk: int | None = chunk  # type: ignore[assignment]
        self.keep_units = [keep_units and system.control[n].has_units for n in self.ternary]

    def step(self, system: System, M: dict[str, torch.Tensor],
             mbar: dict[str, torch.Tensor] | None, w: float, rho: torch.Tensor,
             lam_scale: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Update every discrete θ in place from M (basic MSA: ``mbar`` None, ρ = 0) or from the
        running average ``mbar`` (E-MSA: M̄ ← lerp(M̄, M, w) first), with every l1 weight λ
        times ``lam_scale`` if given (:mod:`ocdl.solvers.sparsity_target`): a 0-d tensor, or a
        1-d one
        with a factor per control in the order of :attr:`order`. Returns metrics and ΔH (its
        l1 term at the scaled λ)."""
        th = system.theta
        self._theta_ref = th
        results: list[ArgmaxResult] = []
        nb, nt = len(self.binary), len(self.ternary)

        def factor(lo: int, hi: int) -> torch.Tensor | None:  # lam_scale for order[lo:hi]
            if lam_scale is None or lam_scale.dim() == 0:
                return lam_scale
            return lam_scale[lo:hi]

        def lists(ns: list[str]):
            m = [M[n] for n in ns]
            return [th[n].detach() for n in ns], (m if mbar is None else [mbar[n] for n in ns]), m

        if self.binary:
            t, mb, m = lists(self.binary)
            A = self._scratch(self.binary, "a")
            results.append(batched.binary_step_(t, mb, m, w, rho, A, self.l2_b, self.chunk))
        if self.ternary:
            t, mb, m = lists(self.ternary)
            A = self._scratch(self.ternary, "a")
            B = self._scratch(self.ternary, "b")
            C = self._scratch(self.ternary, "c") if self.ties_keep else None
            f = factor(nb, nb + nt)
            lam = self.lam_t if f is None else self.lam_t * f
            results.append(batched.ternary_step_(t, mb, m, w, rho, A, B, lam, self.l2_t,
                                               self.chunk, C, self.keep_units))
        if self.levels:
            t, mb, m = lists(self.levels)
            cs = [system.control[n].cset for n in self.levels]
            f = factor(nb + nt, len(self.order))
            lams = [system.control[n].l1 if f is None
                    else system.control[n].l1 * (f if f.dim() == 0 else f[i])
                    for i, n in enumerate(self.levels)]
            results.append(batched.levels_step_(cs, t, mb, m, w, rho, lams,
                                              [system.control[n].l2 for n in self.levels]))
        return self._metrics(results)

    def _scratch(self, names: list[str], tag: str) -> list[torch.Tensor]:
        th = self._theta_ref
        if self.chunk:  # a slice of whole rows holds at least one row
            rows = [th[k].numel() // th[k].shape[0] for k, keep in zip(self.ternary,
                    self.keep_units) if keep and k in names]
            n = max([min(self.chunk, max(th[k].numel() for k in names))] + rows)
            return [self.work.flat(tag, n, th[names[0]])]
        return [self.work.get(k, tag, th[k]) for k in names]

    def _metrics(self, results: list[ArgmaxResult]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        rk = torch.cat([r.rho_k for r in results])
        flips = torch.cat([r.flips for r in results])
        parts, off = [], 0
        for r in results:  # binary layers have no zeros: their count is their size
            n = len(r.flips)
            parts.append(r.nonzero if r.nonzero is not None else self.numel[off:off + n])
            off += n
        nnz = torch.cat(parts)
        dH = results[0].dH
        for r in results[1:]:
            dH = dH + r.dH
        out: dict[str, torch.Tensor] = {}
        fr = flips / self.numel
        nz = nnz / self.numel
        for i, n in enumerate(self.order):
            k = self.keys[n]
            out[f"flips/{k}"] = fr[i]
            out[f"nonzero/{k}"] = nz[i]
        out["flips"] = flips.sum() / self.total
        out["nonzero"] = nnz.sum() / self.total
        out["rho_k/max"] = rk.max()
        out["rho_k/mean"] = rk.mean()
        return out, dH
