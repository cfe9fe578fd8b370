"""Pontryagin residuals of a candidate solution θ (DESIGN.md §1):

* costate-equation residual  max_t |p_t − ∇_x H_t(x_t, p_{t+1}, θ_t)|, with p_T checked against
  −(1/S)∇Φ(x_T); ∇_x H comes from the sympy derivatives for equation systems (independent of
  autograd), from :meth:`System.grad_x_hamiltonian` for networks;
* Hamiltonian-maximisation gap: for real controls max|Σ_s ∇_θ H_t| (= |∇J|), for boxes the
  projected gradient max|Π(θ + M) − θ|, for finite sets max_t [max_{θ∈Θ} Σ_s H_t(θ) − Σ_s H_t(θ*)]
  by enumerating the levels of one entry at a time (the others fixed).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..controls import Box, Levels
from ..symbolic.system import EquationSystem
from ..system import System


def set_theta(system: System, theta: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for k, v in theta.items():
            system.theta[k].copy_(v)


@functools.singledispatch
def costate_residual(system: System, x: Sequence[torch.Tensor],
                     p: Sequence[torch.Tensor | None]) -> float:
    """max over t of |p_t − ∇_x H_t(x_t, p_{t+1}, θ_t)| (t = 1..T−1) and |p_T − (−(1/S)∇Φ)|;
    ``p[t]`` for t = 1..T (p[0] ignored). For a network ∇_x H comes from autograd, for an
    equation system from the sympy derivatives (registered below)."""
    T = system.T
    xT = x[T].detach().requires_grad_(True)
    with torch.enable_grad():
        loss = system.terminal(xT, system._check_y).mean()  # type: ignore[attr-defined]
        gT = -torch.autograd.grad(loss, xT)[0]
    worst = float((p[T] - gT).abs().max())
    for t in range(1, T):
        st = system.stages[t]
        if len(st.inputs) != 1:
            continue
        g = system.grad_x_hamiltonian(t, [x[st.inputs[0]]], p[t + 1], create_graph=False)[0]
        worst = max(worst, float((p[t] - g).abs().max()))
    return worst


@costate_residual.register
def _(system: EquationSystem, x: Sequence[torch.Tensor],
      p: Sequence[torch.Tensor | None]) -> float:
    T = system.T
    op = system.stages[0].op
    with torch.no_grad():
        pT = torch.stack(op.call("pT", x[T], system._u(0), T), dim=1)
        worst = float((p[T] - pT).abs().max())
        for t in range(1, T):
            g = torch.stack(op.call("dH_dx", x[t], system._u(t), t, p[t + 1]), dim=1)
            worst = max(worst, float((p[t] - g).abs().max()))
    return worst


def hamiltonian_gap(system: System, x: Sequence[torch.Tensor],
                    p: Sequence[torch.Tensor | None], M: dict[str, torch.Tensor]) -> float:
    """The Hamiltonian-maximisation gap of the current θ (see the module docstring)."""
    worst = 0.0
    with torch.no_grad():
        for c in system.controls:
            th = system.theta[c.name].detach()
            if isinstance(c.cset, Levels):
                t = c.t
                xs = [x[i] for i in system.stages[t].inputs]
                H0 = float(system.hamiltonian(t, xs, p[t + 1]))
                flat = th.reshape(-1)
                for j in range(flat.numel()):
                    for lv in c.cset.values:
                        if lv == float(flat[j]):
                            continue
                        trial = flat.clone()
                        trial[j] = lv
                        H = float(system.hamiltonian(t, xs, p[t + 1],
                                                     {c.name: trial.reshape(th.shape)}))
                        worst = max(worst, H - H0)
            else:
                m = M[c.name] - (c.l1 * torch.sign(th) if c.l1 else 0.0)
                if isinstance(c.cset, Box):
                    worst = max(worst, float((c.cset.project(th + m) - th).abs().max()))
                else:
                    worst = max(worst, float(m.abs().max()))
    return worst
