"""SGD, Adam/AdamW, BinaryConnect, TWN and Bop against torch's optimizers and their papers."""
from __future__ import annotations

import math

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver

from conftest import mlp_spec, teacher_data


def autograd_steps(spec, x, y, make_opt, steps):
    """The same network trained by a torch optimizer on ∇J (l1 included) from autograd."""
    ref = spec.compile(dtype=torch.float64, seed=0)
    params = [ref.theta[c.name] for c in ref.controls]
    opt = make_opt(params)
    for _ in range(steps):
        opt.zero_grad()
        J, _ = ref.objective(ref.forward(x), y, include_l1=True)
        J.backward()
        opt.step()
    return ref


@pytest.mark.parametrize("name,overrides,make_opt", [
    ("sgd", {"lr": 0.05, "momentum": 0.0},
     lambda p: torch.optim.SGD(p, lr=0.05)),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("sgd", {"lr": 0.02, "momentum": 0.8, "dampening": 0.1},
     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.8, dampening=0.1)),
    ("adam", {"lr": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adam", {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True},
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01, amsgrad=True)),
    ("adamw", {"lr": 0.01}, lambda p: torch.optim.AdamW(p, lr=0.01)),
])
def test_gradient_baselines_match_torch(name, overrides, make_opt):
    spec = mlp_spec("real", bias=True, act="tanh", l1=1e-3)
    x, y = teacher_data(spec, 32)
    ref = autograd_steps(spec, x, y, make_opt, 4)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver(name, overrides)
    st = s.init(system)
    for _ in range(4):
        st, m = s.step(system, st, x, y)
    for c in system.controls:
        assert torch.allclose(system.theta[c.name], ref.theta[c.name].detach(), rtol=1e-10,
                              atol=1e-12), c.name
    assert float(m["grad_norm"]) > 0


def test_box_controls_are_projected():
    spec = mlp_spec("{set: box, lo: -0.1, hi: 0.1}", act="tanh", bn=False)
    x, y = teacher_data(spec, 16)
    system = spec.compile(dtype=torch.float64)
    s = make_solver("sgd", {"lr": 100.0})
    st = s.init(system)
    s.step(system, st, x, y)
    assert system.check_sets() == []
    assert float(system.theta["fc1.weight"].detach().abs().max()) == pytest.approx(0.1)


def test_binaryconnect_step():
    """sign(W) forward, straight-through Adam on W with the Glorot lr scale, clip to [−1, 1]:
    the reference code's W ← clip(W + W_LR_scale·(Adam(W) − W), −H, H) with H = 1 and
    W_LR_scale = 1/sqrt(1.5/(fan_in + fan_out)), written out here for the dense weights."""
    spec = mlp_spec("binary")
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("binaryconnect", {"lr": 0.003})
    st = s.init(system)
    latent0 = {k: v.clone() for k, v in st["latent"].items()}
    for k, w in latent0.items():
        assert torch.equal(system.theta[k], torch.where(w >= 0, 1.0, -1.0).double())
    ref = spec.compile(dtype=torch.float64, seed=0)
    for k in latent0:
        with torch.no_grad():
            ref.theta[k].copy_(system.theta[k])
    J, _ = ref.objective(ref.forward(x), y)
    g = dict(zip(latent0, torch.autograd.grad(J, [ref.theta[k] for k in latent0])))
    st, m = s.step(system, st, x, y)
    for k, w0 in latent0.items():
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.003)
        w.grad = g[k].clone()
        opt.step()
        fan_out, fan_in = w.shape
        w_lr_scale = 1.0 / math.sqrt(1.5 / (fan_in + fan_out))
        exp = (w0 + w_lr_scale * (w.detach() - w0)).clamp(-1, 1)
        assert torch.allclose(st["latent"][k], exp, rtol=1e-12, atol=1e-15), k
        new = torch.where(exp >= 0, 1.0, -1.0).double()
        assert torch.equal(system.theta[k], new)
        flips = float((new != torch.where(w0 >= 0, 1.0, -1.0).double()).double().mean())
        assert float(m[f"flips/{k.split('.')[0]}"]) == pytest.approx(flips)
    assert system.check_sets() == []


def test_binaryconnect_stochastic_stays_binary():
    spec = mlp_spec("binary")
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("binaryconnect", {"stochastic": True, "lr_scale": "none", "lr": 0.01})
    st = s.init(system)
    for _ in range(3):
        st, _ = s.step(system, st, x, y)
    assert system.check_sets() == []
    for k, w in st["latent"].items():  # after the step θ = sign(W), deterministic
        assert torch.equal(system.theta[k], torch.where(w >= 0, 1.0, -1.0).double())
        assert float(w.abs().max()) <= 1.0


def test_twn_ternarises_with_the_papers_threshold():
    spec = mlp_spec("ternary")
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("twn")
    st = s.init(system)
    st, m = s.step(system, st, x, y)
    for k, w in st["latent"].items():
        delta = 0.7 * w.abs().mean()
        exp = torch.where(w > delta, 1.0, torch.where(w < -delta, -1.0, 0.0)).double()
        assert torch.equal(system.theta[k], exp), k
        alpha = w.abs()[w.abs() > delta].mean()
        assert float(m[f"scale/{k.split('.')[0]}"]) == pytest.approx(float(alpha))
        assert float(m[f"nonzero/{k.split('.')[0]}"]) == pytest.approx(
            float((exp != 0).double().mean()))
    assert system.check_sets() == []


@pytest.mark.parametrize("nesterov", [False, True])
def test_twn_sgd_momentum_is_torch_sgd_on_the_straight_through_gradient(nesterov):
    """optimizer: sgd — the latent W follows torch.optim.SGD (momentum, L2 weight decay) fed
    ∂J/∂θ (l1 included) from autograd at the current θ = tern(W), over three steps."""
    spec = mlp_spec("ternary", affine=False, l1=1e-3)  # no real controls: W is all that moves
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    hp = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3,
          "nesterov": nesterov}
    s = make_solver("twn", hp)
    st = s.init(system)
    names = ["fc1.weight", "fc2.weight"]
    w = [st["latent"][k].clone().requires_grad_() for k in names]
    opt = torch.optim.SGD(w, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    for _ in range(3):
        ref = spec.compile(dtype=torch.float64, seed=0)
        for k in names:
            ref.theta[k].data.copy_(system.theta[k])
        J, _ = ref.objective(ref.forward(x), y, include_l1=True)
        grads = torch.autograd.grad(J, [ref.theta[k] for k in names])
        for p, g in zip(w, grads):
            p.grad = g
        opt.step()
        st, m = s.step(system, st, x, y)
        for k, p in zip(names, w):
            assert torch.allclose(st["latent"][k], p.detach(), rtol=1e-12, atol=1e-15), k
            delta = 0.7 * p.detach().abs().mean()
            exp = torch.where(p > delta, 1.0, torch.where(p < -delta, -1.0, 0.0)).double()
            assert torch.equal(system.theta[k], exp), k
    assert "adam" not in st and float(m["flips"]) >= 0


@pytest.mark.parametrize("hp, match", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"optimizer": "sgd", "momentum": 1.0}, "momentum"),
    ({"nesterov": True}, "nesterov.*optimizer: sgd")])
def test_twn_optimizer_settings_are_checked(hp, match):
    with pytest.raises(SolverError, match=match):
        make_solver("twn", hp)


def test_twn_refuses_a_network_without_batchnorm():
    with pytest.raises(SolverError, match="batchnorm"):
        make_solver("twn").init(mlp_spec("ternary", bn=False).compile())


def test_bop_flips_where_the_momentum_agrees_with_the_weight():
    spec = mlp_spec("binary")
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("bop", {"gamma": 0.5, "threshold": 1e-3})
    st = s.init(system)
    ref = spec.compile(dtype=torch.float64, seed=0)
    names = ["fc1.weight", "fc2.weight"]
    J, _ = ref.objective(ref.forward(x), y)
    g = dict(zip(names, torch.autograd.grad(J, [ref.theta[k] for k in names])))
    st, m = s.step(system, st, x, y)
    for k in names:
        mom = 0.5 * g[k]
        assert torch.allclose(st["m"][k], mom, rtol=1e-12, atol=1e-16)
        w0 = ref.theta[k].detach()
        exp = torch.where(w0 * mom > 1e-3, -w0, w0)
        assert torch.equal(system.theta[k], exp), k
        assert float(m[f"flips/{k.split('.')[0]}"]) == pytest.approx(
            float((exp != w0).double().mean()))
    assert system.check_sets() == []


@pytest.mark.parametrize("solver,kind", [
    ("adam", "ternary"), ("sgd", "binary"), ("bop", "real"), ("bop", "ternary"),
    ("binaryconnect", "ternary"), ("twn", "binary"), ("emsa-binary", "ternary"),
    ("emsa-ternary", "{set: levels, values: [-1, 0, 1, 2]}")])
def test_unsupported_sets_are_refused(solver, kind):
    system = mlp_spec(kind).compile()
    with pytest.raises(SolverError, match="cannot optimise control fc1.weight"):
        make_solver(solver).init(system)


@pytest.mark.parametrize("solver,kind", [("binaryconnect", "binary"), ("bop", "binary"),
                                         ("twn", "ternary")])
def test_cuda_graph_step_is_accepted_and_changes_nothing_on_the_cpu(solver, kind):
    """cuda_graph: step captures the baselines' whole step on CUDA (tests/solvers/test_gpu.py);
    on the CPU it is accepted and the numbers are those of the plain step."""
    spec = mlp_spec(kind, l1=1e-4 if kind == "ternary" else 0.0)
    x, y = teacher_data(spec, 32)
    res = []
    for graph in (False, "step"):
        system = spec.compile(dtype=torch.float64, seed=0)
        s = make_solver(solver, {"cuda_graph": graph})
        st = s.init(system)
        for _ in range(3):
            st, m = s.step(system, st, x, y)
        assert st["iteration"] == 3
        res.append(({k: v.clone() for k, v in system.theta.items()}, float(m["loss"])))
    (ta, la), (tb, lb) = res
    assert la == lb and all(torch.equal(ta[k], tb[k]) for k in ta)
    with pytest.raises(SolverError, match="cuda_graph.*one of false, step, got .update."):
        make_solver(solver, {"cuda_graph": "update"})


def test_binaryconnect_refuses_to_graph_stochastic_binarisation():
    with pytest.raises(SolverError, match="cannot capture stochastic binarisation.*"
                                          "stochastic: false or cuda_graph: false"):
        make_solver("binaryconnect", {"cuda_graph": "step", "stochastic": True})
