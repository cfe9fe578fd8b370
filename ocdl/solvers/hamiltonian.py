"""Hamiltonians of many stages at once, for the inner maximisation of (E-)MSA.

With the states x_t and costates p_t of the current controls θ^k fixed, the stage problems are
separable, so one objective Σ_t (·)_t and one ``torch.autograd.grad`` call give every stage's
gradient in θ:

    Σ_t Σ_s H_t(x_{s,t}, p_{s,t+1}, θ_t)                                       (MSA)
    Σ_t Σ_s [ H_t − ρ/2 ‖x_{s,t+1} − f_t(x_{s,t}, θ_t)‖² − ρ/2 ‖p_{s,t} − ∇_x H_t(x_{s,t}, p_{s,t+1}, θ_t)‖² ]
                                                                                 (E-MSA)

The reference costate p_{s,t} of the feasibility term is ∇_x H_t at θ^k, taken from the reverse
pass where stage t is the only reader of its input state, else recomputed once, before the inner
steps change θ. :func:`feasibility` evaluates, after a step, the exact Hamiltonian gain
ΔH = Σ_t [H_t(θ_new) − H_t(θ^k)] and the two feasibility errors at the old x, p (the terms of
the error estimate, DESIGN.md §1).

In a data-parallel run each rank evaluates its rows' share of these sums (the control costs
weighted by S_r/S: :meth:`System.rank_share`); :func:`ascent_grads`, :func:`feasibility` and
:func:`replay_objective` add the shares over the ranks (:meth:`System.sum_over_ranks`), so every
rank takes the single process's inner steps and accepts or rejects the same steps.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import torch

from ..system import Costates, States, System


def control_stages(system: System, names: Sequence[str]) -> list[int]:
    """Indices t of the stages owning the controls ``names`` (sorted, unique)."""
    return sorted({system.control[n].t for n in names})


def reference_costates(system: System, states: States, costates: Costates, ts: Sequence[int]
                       ) -> dict[int, list[torch.Tensor]]:
    """p_t = ∇_x H_t(x_t, p_{t+1}, θ^k) for each stage t in ``ts`` and each state it reads, from
    the reverse pass where possible (the state has one reader), else recomputed."""
    readers = Counter(i for st in system.stages for i in st.inputs)
    out: dict[int, list[torch.Tensor]] = {}
    for t in ts:
        ins = system.stages[t].inputs
        ps = [costates.p[i] if i < len(costates.p) else None for i in ins]
        if all(readers[i] == 1 and p is not None for i, p in zip(ins, ps)):
            out[t] = [p.detach() for p in ps]  # type: ignore[union-attr]
        else:
            out[t] = [g.detach() for g in system.grad_x_hamiltonian(
                t, system.stage_inputs(states, t), costates.p[t + 1].detach(),
                create_graph=False, ctx=states.ctx[t])]
    return out


def hamiltonian_sum(system: System, states: States, costates: Costates, ts: Sequence[int],
                    theta: dict[str, torch.Tensor] | None = None, *, include_l1: bool = True
                    ) -> torch.Tensor:
    """Σ_{t ∈ ts} Σ_s H_t(x_{s,t}, p_{s,t+1}, θ_t) at the fixed x, p (differentiable in θ)."""
    total = None
    for t in ts:
        xs = [x.detach() for x in system.stage_inputs(states, t)]
        h = system.hamiltonian(t, xs, costates.p[t + 1].detach(), theta, ctx=states.ctx[t],
                               include_l1=include_l1)
        total = h if total is None else total + h
    return total if total is not None else torch.zeros((), device=system.device,
                                                       dtype=system.dtype)


def augmented_sum(system: System, states: States, costates: Costates, ts: Sequence[int],
                  rho: float | torch.Tensor, p_ref: dict[int, list[torch.Tensor]],
                  theta: dict[str, torch.Tensor] | None = None, *, create_graph: bool = True
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_{t ∈ ts} of :meth:`System.augmented_hamiltonian` (value and summed parts ``H``,
    ``state_error``, ``costate_error``), differentiable in θ by double backward (with
    ``create_graph``; without, the numbers only: ∇_x H is not kept in the graph)."""
    value = None
    parts: dict[str, torch.Tensor] = {}
    for t in ts:
        v, pt = system.augmented_hamiltonian(
            t, system.stage_inputs(states, t), costates.p[t + 1], theta or {}, rho,
            x_next=states.x[t + 1].detach(), p_t=p_ref[t], ctx=states.ctx[t],
            create_graph=create_graph)
        value = v if value is None else value + v
        for k, x in pt.items():
            parts[k] = x if k not in parts else parts[k] + x
    if value is None:
        z = torch.zeros((), device=system.device, dtype=system.dtype)
        return z, {"H": z, "state_error": z, "costate_error": z}
    return value, parts


def feasibility(system: System, states: States, costates: Costates, ts: Sequence[int],
                theta_old: dict[str, torch.Tensor], p_ref: dict[int, list[torch.Tensor]]
                ) -> dict[str, torch.Tensor]:
    """After a step to the current ``system.theta`` from ``theta_old`` (overrides by name):
    exact ``dH`` = Σ_t [H_t(θ_new) − H_t(θ_old)] at the old x, p, and the feasibility errors
    ``state_error`` = Σ ‖f_t(x_t, θ_new) − x_{t+1}‖², ``costate_error`` = Σ ‖∇_x H_t(θ_new) − p_t‖²
    (all 0-d, detached; over the global batch in a data-parallel run)."""
    with torch.no_grad():
        h_old = hamiltonian_sum(system, states, costates, ts, theta_old)
    _, parts = augmented_sum(system, states, costates, ts, 0.0, p_ref, create_graph=False)
    out = {"dH": (parts["H"] - h_old).detach(), "state_error": parts["state_error"].detach(),
           "costate_error": parts["costate_error"].detach()}
    system.sum_over_ranks(list(out.values()), "the feasibility errors")
    return out


def params_of(system: System, names: Sequence[str]) -> list[torch.Tensor]:
    """The leaf tensors θ of ``names`` (requiring grad), for ``torch.autograd.grad``."""
    return [system.theta[n] for n in names]


def ascent_grads(objective: torch.Tensor, system: System, names: Sequence[str]
                 ) -> dict[str, torch.Tensor]:
    """∇_θ of an objective to be maximised, one autograd call for all ``names`` (summed over
    the ranks of a data-parallel run, whose objectives are the ranks' shares)."""
    gs = torch.autograd.grad(objective, params_of(system, names), allow_unused=True)
    out = {n: (g if g is not None else torch.zeros_like(system.theta[n]))
           for n, g in zip(names, gs)}
    system.sum_over_ranks(list(out.values()), "an inner step's gradient")
    return out


def snapshot(system: System, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Detached copies of θ for ``names``."""
    with torch.no_grad():
        return {n: system.theta[n].detach().clone() for n in names}


def restore_(system: System, saved: dict[str, torch.Tensor], keep: torch.Tensor | None = None
             ) -> None:
    """θ ← saved (where ``keep`` is false when given: θ ← where(keep, θ, saved)), in place,
    without a host sync."""
    with torch.no_grad():
        for n, old in saved.items():
            th = system.theta[n]
            if keep is None:
                th.copy_(old)
            else:
                th.copy_(torch.where(keep, th, old))


def replay_objective(system: System, states: States, x0: torch.Tensor, y: torch.Tensor
                     ) -> torch.Tensor:
    """J (with the l1 costs) at the current θ on the batch of ``states``, replaying its random
    draws and batch statistics mode, without touching BatchNorm running statistics (no grad).
    In a data-parallel run, J of the global batch: Σ_r (S_r/S)·J_r."""
    with torch.no_grad():
        xs = [x0]
        for t, st in enumerate(system.stages):
            xs.append(system.apply_stage(t, [xs[i] for i in st.inputs], train=states.train,
                                         ctx=states.ctx[t]))
        J, _ = system.objective(States(xs, states.ctx, states.train), y, include_l1=True)
        if system.data_parallel is not None:
            J = J * system.rank_share(int(x0.shape[0]))
            system.sum_over_ranks([J], "the replayed objective")
    return J


def l1_cost(system: System, names: Sequence[str] | None = None) -> torch.Tensor:
    """Σ λ‖θ‖₁ over the controls with an l1 cost (0-d, no grad)."""
    with torch.no_grad():
        terms = [system.control[n].l1 * system.theta[n].detach().abs().sum()
                 for n in (names if names is not None else system.control)
                 if system.control[n].l1]
        if not terms:
            return torch.zeros((), device=system.device, dtype=system.dtype)
        return torch.stack(terms).sum()
