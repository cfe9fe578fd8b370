"""Basic MSA: one inner gradient step is gradient descent; finite sets take the exact argmax."""
from __future__ import annotations

import pytest
import torch

from ocdl.solvers import make_solver
from ocdl.solvers.hamiltonian_argmax import closed_forms

from conftest import mlp_spec, teacher_data


def grad_J(system, x, y, include_l1=True):
    """∇J of the full objective by plain autograd (independent of System.costates)."""
    st = system.forward(x, update_stats=False)
    J, _ = system.objective(st, y, include_l1=include_l1)
    names = [c.name for c in system.controls]
    gs = torch.autograd.grad(J, [system.theta[n] for n in names])
    return dict(zip(names, gs))


@pytest.mark.parametrize("lr", [0.05, 0.3])
def test_one_gradient_step_is_gradient_descent(lr):
    spec = mlp_spec("real", bias=True, act="tanh", bn=False, l1=1e-2)
    x, y = teacher_data(spec, 32)
    ref = spec.compile(dtype=torch.float64, seed=0)
    g = grad_J(ref, x, y)
    expected = {n: ref.theta[n].detach() - lr * g[n] for n in g}
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("msa", {"lr": lr, "inner_steps": 1, "inner": "gd"})
    state = solver.init(system)
    state, metrics = solver.step(system, state, x, y)
    for n, v in expected.items():
        assert torch.allclose(system.theta[n], v, rtol=1e-12, atol=1e-14), n
    # ΔH of the step = Σ M·Δθ = lr‖∇J‖² (the Hamiltonian is linear in dense weights)
    assert float(metrics["dH"]) == pytest.approx(lr * sum(float(v.square().sum())
                                                          for v in g.values()), rel=1e-10)


def test_k_gradient_steps_on_a_linear_hamiltonian():
    """Dense stages are linear in θ, so ∇_θ Σ H does not change: k steps move k·lr·M."""
    spec = mlp_spec("real", bias=True, act="tanh", bn=False)
    x, y = teacher_data(spec, 16)
    ref = spec.compile(dtype=torch.float64, seed=0)
    g = grad_J(ref, x, y)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("msa", {"lr": 0.01, "inner_steps": 3})
    state = solver.init(system)
    solver.step(system, state, x, y)
    for n in g:
        assert torch.allclose(system.theta[n], ref.theta[n].detach() - 0.03 * g[n], rtol=1e-11,
                              atol=1e-13), n


def test_box_controls_reach_the_bang_bang_argmax():
    """Over a box, argmax of the linear Σ H is the vertex sign(M): projected ascent finds it."""
    spec = mlp_spec("{set: box, lo: -0.5, hi: 0.5}", bn=False, act="tanh")
    x, y = teacher_data(spec, 16)
    ref = spec.compile(dtype=torch.float64, seed=0)
    g = grad_J(ref, x, y)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("msa", {"lr": 1e6, "inner_steps": 2})
    state = solver.init(system)
    solver.step(system, state, x, y)
    for n in g:
        assert torch.equal(system.theta[n], -0.5 * torch.sign(g[n])), n
    assert system.check_sets() == []


@pytest.mark.parametrize("kind,levels", [("binary", (-1.0, 1.0)), ("ternary", (-1.0, 0.0, 1.0)),
                                         ("{set: levels, values: [-1, -0.5, 0, 0.5, 1]}",
                                          (-1.0, -0.5, 0.0, 0.5, 1.0))])
def test_finite_sets_take_the_exact_argmax(kind, levels):
    spec = mlp_spec(kind, affine=False, l1=0.01)
    x, y = teacher_data(spec, 32)
    ref = spec.compile(dtype=torch.float64, seed=0)
    g = grad_J(ref, x, y, include_l1=False)  # M = −∇J of the smooth part; λ|θ| enters the argmax
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("msa")
    state = solver.init(system)
    state, metrics = solver.step(system, state, x, y)
    for n in g:
        old = ref.theta[n].detach()
        exp = closed_forms.levels_argmax(-g[n], old, levels, 0.0, 0.01)
        assert torch.equal(system.theta[n], exp), n
        key = n.split(".")[0]
        assert float(metrics[f"flips/{key}"]) == pytest.approx(float((exp != old).double().mean()))
        assert float(metrics[f"nonzero/{key}"]) == pytest.approx(float((exp != 0).double().mean()))
    assert system.check_sets() == []


def test_lbfgs_and_adam_inner_maximisers_increase_H():
    """The other inner maximisers must increase Σ_t H_t at the fixed x, p and stay in the box
    (L-BFGS is projected once, at the end), leaving no gradients behind."""
    from ocdl.solvers.hamiltonian import hamiltonian_sum
    spec = mlp_spec("{set: box, lo: -1, hi: 1}", act="tanh", bias=True, bn=False)
    x, y = teacher_data(spec, 16)
    for inner in ("lbfgs", "adam"):
        system = spec.compile(dtype=torch.float64, seed=0)
        st = system.forward(x)
        c = system.costates(st, y)
        ts = list(range(system.T))
        with torch.no_grad():
            before = float(hamiltonian_sum(system, st, c, ts))
        solver = make_solver("msa", {"inner": inner, "inner_steps": 5, "lr": 0.01})
        state = solver.init(system)
        solver.step(system, state, x, y)
        with torch.no_grad():
            after = float(hamiltonian_sum(system, st, c, ts))
        assert after > before, inner
        assert system.check_sets() == []
        assert all(p.grad is None for p in system.theta.values())
