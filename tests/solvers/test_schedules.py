"""The schedules: the per-epoch learning-rate decay ``lr_decay`` against torch's ExponentialLR,
and the schedules fitted to the run's progress π (``lr_end``, E-MSA's ``alpha_end``)."""
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


@pytest.mark.parametrize("epochs", [1, 3])
def test_lr_end_is_lr_decay_fitted_to_the_run(epochs):
    """lr_end = r with π = e/E gives the rates of lr_decay = r^(1/E): the same Adam steps
    (the ExponentialLR reference of the test above) and lr_scale = r at the end."""
    spec = mlp_spec("real", bias=True, act="tanh")
    x, y = teacher_data(spec, 32)
    r = 0.125
    out = []
    for ov in ({"lr": 0.02, "lr_end": r}, {"lr": 0.02, "lr_decay": r ** (1 / epochs)}):
        system = spec.compile(dtype=torch.float64, seed=0)
        s = make_solver("adam", ov)
        st = s.init(system)
        for e in range(1, epochs + 1):
            for _ in range(STEPS):
                st, _ = s.step(system, st, x, y)
            st = s.end_epoch(system, st, e, progress=e / epochs)
        assert st["lr_scale"] == pytest.approx(r)
        out.append(system.theta["fc1.weight"].clone())
    assert torch.allclose(out[0], out[1], rtol=1e-10, atol=1e-12)


def test_alpha_end_follows_the_progress_not_the_epoch_count():
    spec = mlp_spec("ternary", l1=1e-4)
    system = spec.compile(seed=0)
    s = make_solver("emsa-ternary", {"alpha_end": 0.01, "lr_end": 0.5})
    st = s.init(system)
    cases = [(0.5, 1e-4, 0.5 ** 0.5), (0.25, 1e-3 * 0.01 ** 0.25, 0.5 ** 0.25),
             (1.0, 1e-5, 0.5), (1.7, 1e-5, 0.5)]  # π beyond 1 is clipped
    for progress, one_minus_alpha, lr_scale in cases:
        st = s.end_epoch(system, st, 1, progress=progress)  # π is read, not accumulated
        assert 1 - st["alpha"] == pytest.approx(one_minus_alpha)
        assert st["lr_scale"] == pytest.approx(lr_scale)
    # alpha_decay is not applied on top
    s2 = make_solver("emsa-ternary", {"alpha_end": 1.0, "alpha_decay": 0.5})
    st2 = s2.end_epoch(system, s2.init(system), 1, progress=0.5)
    assert st2["alpha"] == pytest.approx(0.999)


@pytest.mark.parametrize("name,key", [("emsa", "alpha_end"), ("emsa", "lr_end"),
                                      ("binaryconnect", "lr_end")])
def test_a_progress_schedule_needs_the_progress(name, key):
    spec = mlp_spec("binary" if name == "binaryconnect" else "ternary", l1=1e-4)
    system = spec.compile(seed=0)
    s = make_solver(name, {key: 0.1})
    with pytest.raises(SolverError, match=f"'{key}' schedules by the run's progress.*progress="):
        s.end_epoch(system, s.init(system), 1)


@pytest.mark.parametrize("key", ["alpha_end", "lr_end"])
@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1, True, "half"])
def test_end_values_outside_0_1_are_refused(key, bad):
    with pytest.raises(SolverError, match=f"'{key}' must be a number in \\(0, 1\\] or null"):
        make_solver("emsa", {key: bad})
