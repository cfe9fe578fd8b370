"""The per-epoch learning-rate schedule ``lr_decay`` against torch's ExponentialLR."""
from __future__ import annotations

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver

from conftest import mlp_spec, teacher_data

EPOCHS, STEPS = 3, 2


def torch_reference(spec, x, y, make_opt, decay):
    """torch.optim on ∇J (autograd) with ExponentialLR(gamma=decay) stepped after each epoch."""
    ref = spec.compile(dtype=torch.float64, seed=0)
    opt = make_opt([ref.theta[c.name] for c in ref.controls])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
    for _ in range(EPOCHS):
        for _ in range(STEPS):
            opt.zero_grad()
            J, _ = ref.objective(ref.forward(x), y, include_l1=True)
            J.backward()
            opt.step()
        sched.step()
    return ref


@pytest.mark.parametrize("name,overrides,make_opt", [
    ("adam", {"lr": 0.02, "lr_decay": 0.5}, lambda p: torch.optim.Adam(p, lr=0.02)),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "lr_decay": 0.3},
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    # E-MSA's Adam mode on a network of real controls is Adam on ∇J: the same schedule applies
    ("emsa", {"lr": 0.02, "lr_decay": 0.5, "continuous": "adam"},
     lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.0)),
])
def test_lr_decay_matches_exponential_lr(name, overrides, make_opt):
    spec = mlp_spec("real", bias=True, act="tanh")
    x, y = teacher_data(spec, 32)
    decay = overrides["lr_decay"]
    ref = torch_reference(spec, x, y, make_opt, decay)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver(name, overrides)
    st = s.init(system)
    for e in range(1, EPOCHS + 1):
        for _ in range(STEPS):
            st, _ = s.step(system, st, x, y)
        st = s.end_epoch(system, st, e)
    assert st["lr_scale"] == pytest.approx(decay ** EPOCHS)
    assert s.lr(st) == pytest.approx(overrides["lr"] * decay ** EPOCHS)
    for c in system.controls:
        # Adam divides by √v: gradients that agree to 1e-15 give steps that agree to ~1e-10
        # after six steps (also with a constant rate); a wrong rate differs by ~1e-3
        assert torch.allclose(system.theta[c.name], ref.theta[c.name].detach(), rtol=1e-8,
                              atol=1e-8), c.name


def test_a_decayed_schedule_differs_from_a_constant_one():
    """The decay reaches the step (not only the state): after an epoch the runs part."""
    spec = mlp_spec("real", bias=True, act="tanh")
    x, y = teacher_data(spec, 32)
    out = []
    for d in (1.0, 0.1):
        system = spec.compile(dtype=torch.float64, seed=0)
        s = make_solver("adam", {"lr": 0.02, "lr_decay": d})
        st = s.init(system)
        st, _ = s.step(system, st, x, y)
        st = s.end_epoch(system, st, 1)
        st, _ = s.step(system, st, x, y)
        out.append(system.theta["fc1.weight"].clone())
    assert not torch.allclose(out[0], out[1])


def test_emsa_end_epoch_decays_alpha_and_the_learning_rates_together():
    spec = mlp_spec("ternary", l1=1e-4)
    system = spec.compile(seed=0)
    s = make_solver("emsa-ternary", {"lr_decay": 0.9, "alpha_decay": 0.5})
    st = s.init(system)
    st = s.end_epoch(system, st, 1)
    st = s.end_epoch(system, st, 2)
    assert st["lr_scale"] == pytest.approx(0.81)
    assert 1 - st["alpha"] == pytest.approx(0.001 * 0.25)
    assert s.lr(st, "inner_lr") == pytest.approx(1e-3 * 0.81)


@pytest.mark.parametrize("name", ["adam", "sgd", "emsa", "msa", "binaryconnect", "twn", "bop"])
@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_lr_decay_outside_0_1_is_refused(name, bad):
    with pytest.raises(SolverError, match="lr_decay.*must be in \\(0, 1\\]"):
        make_solver(name, {"lr_decay": bad})
