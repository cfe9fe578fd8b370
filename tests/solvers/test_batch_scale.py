"""E-MSA's ``alpha_batch_size``: α and ``nonzero_rate`` as rates per B₀ samples."""
from __future__ import annotations

import math

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver
from ocdl.solvers.hamiltonian_argmax import closed_forms
from ocdl.solvers.sparsity_target import NonzeroTarget

from conftest import mlp_spec, teacher_data


def _grads(spec, x, y, names):
    ref = spec.compile(dtype=torch.float64, seed=0)
    J, _ = ref.objective(ref.forward(x), y)
    return ref, dict(zip(names, torch.autograd.grad(J, [ref.theta[n] for n in names])))


def test_a_batch_of_four_reference_batches_averages_with_alpha_to_the_fourth():
    """A batch of S = 32 samples with alpha_batch_size = 8: M̄ ← α⁴ M̄ + (1 − α⁴) M (M from
    autograd), then the ternary rule on that M̄; the λ scale moves by 4η·log(ν/B)."""
    spec = mlp_spec("ternary", l1=1e-3)
    x, y = teacher_data(spec, 32)
    names = ("fc1.weight", "fc2.weight")
    ref, grads = _grads(spec, x, y, names)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"alpha": 0.9, "alpha_batch_size": 8,
                                          "nonzero_target": 0.1, "nonzero_rate": 0.05})
    state = solver.init(system)
    mbar0 = {k: v.clone() for k, v in state["mbar"].items()}
    state, metrics = solver.step(system, state, x, y)
    a = 0.9 ** 4
    nnz = total = 0
    for n in names:
        mbar = a * mbar0[n] + (1 - a) * (-grads[n])
        assert torch.allclose(state["mbar"][n], mbar, rtol=1e-12, atol=1e-15), n
        rk = closed_forms.rho_k(mbar, ref.theta[n].detach(), 0.25)
        exp = closed_forms.ternary_update(mbar, ref.theta[n].detach(), rk, 1e-3)
        assert torch.equal(system.theta[n], exp), n
        nnz, total = nnz + int((exp != 0).sum()), total + exp.numel()
    assert float(state[NonzeroTarget.KEY]) == pytest.approx(4 * 0.05 * math.log(nnz / total / 0.1),
                                                            rel=1e-12)
    assert state["alpha"] == 0.9  # the schedule keeps the rate per reference batch


def test_at_the_reference_batch_size_the_step_is_unchanged():
    spec = mlp_spec("binary")
    x, y = teacher_data(spec, 16)
    out = []
    for over in ({"alpha": 0.7, "alpha_batch_size": None}, {"alpha": 0.7, "alpha_batch_size": 16}):
        system = spec.compile(dtype=torch.float64, seed=0)
        solver = make_solver("emsa-binary", over)
        state = solver.init(system)
        for _ in range(3):
            state, _ = solver.step(system, state, x, y)
        out.append((state["mbar"]["fc1.weight"].clone(), system.theta["fc1.weight"].clone()))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


@pytest.mark.parametrize("value", [0, -100, 2.5, True, "100"])
def test_bad_alpha_batch_size_says_what_to_write(value):
    with pytest.raises(SolverError, match="alpha_batch_size.*whole number of samples"):
        make_solver("emsa-binary", {"alpha_batch_size": value})
