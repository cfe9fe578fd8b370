"""The solver parts on their own: quantizers, schedules, the ρ controller, and the latent-weight
composition with the nearest-level quantizer (a preset, no class of its own) against a hand
computation."""
from __future__ import annotations

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver
from ocdl.solvers.quantizers import QUANTIZERS, Nearest, Sign, TernaryThreshold
from ocdl.solvers.rho_control import RhoControl
from ocdl.solvers.schedules import PerEpoch, ToEnd, cubic_weight, exponential

from conftest import mlp_spec, teacher_data

LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def scratch_like(theta):
    bufs: dict[str, list[torch.Tensor]] = {}
    return lambda tag: bufs.setdefault(tag, [torch.empty_like(t) for t in theta])


def test_quantizers_by_hand():
    w = torch.tensor([[-0.9, -0.3, -0.0, 0.0, 0.2, 0.75, 0.26, -0.25]], dtype=torch.float64)
    out = [torch.empty_like(w)]
    Sign({}).quantize_(out, [w], scratch_like(out))
    assert out[0].tolist() == [[-1, -1, 1, 1, 1, 1, 1, -1]]  # sign(0) = +1 (and −0)
    q = TernaryThreshold({"delta_factor": 0.7})  # Δ = 0.7 · mean|w| = 0.7 · 0.3375 = 0.23625
    extras = q.quantize_(out, [w], scratch_like(out))
    assert out[0].tolist() == [[-1, -1, 0, 0, 0, 1, 1, -1]]
    assert float(extras["scale"][0]) == pytest.approx((0.9 + 0.3 + 0.75 + 0.26 + 0.25) / 5)
    n = Nearest({})
    n.levels = [list(LEVELS)]
    n.quantize_(out, [w], scratch_like(out))  # midpoints −0.75, −0.25, 0.25, 0.75: ties go down
    assert out[0].tolist() == [[-1, -0.5, 0, 0, 0, 0.5, 0.5, -0.5]]
    assert set(QUANTIZERS) == {"sign", "ternary-threshold", "nearest"}


def test_requantize_counts_flips_and_nonzeros():
    theta = [torch.tensor([1.0, -1.0, 0.0, 0.5])]
    n = Nearest({})
    n.levels = [list(LEVELS)]
    flips, nnz, _ = n.requantize_(theta, [torch.tensor([0.9, 0.1, 0.0, 0.6])],
                                  scratch_like(theta), torch.tensor([4.0]))
    assert theta[0].tolist() == [1.0, 0.0, 0.0, 0.5] and flips.tolist() == [1.0]
    assert nnz.tolist() == [2.0]


def test_schedules():
    assert PerEpoch(0.5).after_epoch(0.2, 1.0, None) == 0.1
    assert ToEnd(0.01, "s", "lr_end").after_epoch(0.7, 1.0, 0.5) == pytest.approx(0.1)
    assert ToEnd(0.01, "s", "lr_end").after_epoch(0.7, 2.0, 3.0) == pytest.approx(0.02)
    with pytest.raises(SolverError, match="solver 's' setting 'lr_end' schedules by the run's "
                                          "progress.*instead of 'lr_end'"):
        ToEnd(0.01, "s", "lr_end").after_epoch(1.0, 1.0, None)
    assert isinstance(exponential(0.9, None, "s", "k"), PerEpoch)
    assert [cubic_weight(t) for t in (-1, 0, 0.5, 1, 2)] == [1.0, 1.0, 0.125, 0.0, 0.0]


def test_rho_control_rules():
    rc = RhoControl({**RhoControl.DEFAULTS, "adaptive": True, "up": 2.0, "down": 0.5})
    t = torch.tensor
    for actual, predicted, ok, rho in ((1.0, 0.5, True, 0.5), (0.3, 0.5, True, 1.0),
                                       (0.01, 0.5, False, 2.0), (-1.0, -2.0, False, 2.0)):
        state = {"rho": t(1.0)}
        acc = rc.accept(t(actual), t(predicted))
        rc.adapt_(state, acc, t(actual), t(predicted))
        assert bool(acc) is ok and float(state["rho"]) == rho, (actual, predicted)


def test_latent_nearest_preset_steps_by_hand():
    """The latent-nearest preset (the latent solver with the nearest quantizer, W = θ at first)
    on a network of 5-level weights: the first Adam step moves every W by lr·g/(|g| + ε) (bias-
    corrected moments g and g²) with g = M − λ sign θ, and θ is the level nearest to W."""
    spec = mlp_spec("{set: levels, values: [-1, -0.5, 0, 0.5, 1]}", bn=True, l1=1e-3)
    x, y = teacher_data(spec, 32)
    system, twin = spec.compile(dtype=torch.float64), spec.compile(dtype=torch.float64)
    s = make_solver("latent-nearest", {"lr": 0.3})
    assert s.hp["quantizer"] == "nearest" and s.accepted_kinds() == ("binary", "ternary",
                                                                     "levels", "real", "box")
    state = s.init(system)
    J, _ = twin.objective(twin.forward(x), y)
    names = ["fc1.weight", "fc2.weight"]
    grads = dict(zip(names, torch.autograd.grad(J, [twin.theta[n] for n in names])))
    state, metrics = s.step(system, state, x, y)
    mid = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64)
    lv = torch.tensor(LEVELS, dtype=torch.float64)
    for n in names:
        th0 = twin.theta[n].detach()
        g = -grads[n] - 1e-3 * torch.sign(th0)  # M − λ sign θ
        w = th0 + 0.3 * g / (g.abs() + 1e-8)
        assert torch.allclose(state["latent"][n], w, rtol=0, atol=1e-12)
        expect = lv[torch.bucketize(w, mid, right=False)]
        assert torch.equal(system.theta[n], expect), n
        changed = (expect != th0).double().mean()
        assert float(metrics[f"flips/{n.split('.')[0]}"]) == pytest.approx(float(changed))


def test_latent_solver_refuses_sets_its_quantizer_cannot_make():
    with pytest.raises(Exception, match="cannot optimise control fc1.weight with a ternary"):
        make_solver("latent", {"quantizer": "sign"}).init(mlp_spec("ternary").compile())
    with pytest.raises(SolverError, match="'stochastic' draws the sign quantizer's θ"):
        make_solver("latent", {"stochastic": True})
