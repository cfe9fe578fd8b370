"""E-MSA: closed forms with the running average, the augmented Hamiltonian, ρ control."""
from __future__ import annotations

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver
from ocdl.solvers.hamiltonian_argmax import closed_forms
from ocdl.solvers.hamiltonian import augmented_sum, reference_costates

from conftest import mlp_spec, teacher_data


def test_discrete_step_matches_the_papers_update():
    """One emsa-ternary step against an independent computation: M from autograd, M̄ ← αM̄ +
    (1−α)M, ρ_k per layer, the ternary rule with the model's λ; BatchNorm by torch's Adam."""
    spec = mlp_spec("ternary", l1=1e-3)
    x, y = teacher_data(spec, 32)
    ref = spec.compile(dtype=torch.float64, seed=0)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"alpha": 0.6, "alpha_batch_size": None})
    state = solver.init(system)
    mbar0 = {k: v.clone() for k, v in state["mbar"].items()}
    st = ref.forward(x)
    J, _ = ref.objective(st, y)
    names = [c.name for c in ref.controls]
    grads = dict(zip(names, torch.autograd.grad(J, [ref.theta[n] for n in names])))
    real = [n for n in names if n.startswith("bn")]
    opt = torch.optim.Adam([ref.theta[n] for n in real], lr=1e-3)
    for n in real:
        ref.theta[n].grad = grads[n].clone()
    opt.step()
    state, metrics = solver.step(system, state, x, y)
    rks = []
    for n in ("fc1.weight", "fc2.weight"):
        mbar = 0.6 * mbar0[n] + 0.4 * (-grads[n])
        assert torch.allclose(state["mbar"][n], mbar, rtol=1e-12, atol=1e-15)
        rk = closed_forms.rho_k(mbar, ref.theta[n].detach(), 0.25)
        rks.append(float(rk))
        exp = closed_forms.ternary_update(mbar, ref.theta[n].detach(), rk, 1e-3)
        assert torch.equal(system.theta[n], exp), n
    for n in real:
        assert torch.allclose(system.theta[n], ref.theta[n].detach(), rtol=1e-12, atol=1e-15), n
    assert float(metrics["rho_k/max"]) == pytest.approx(max(rks))
    assert float(metrics["rho"]) == 0.25
    for k in ("loss", "J", "dH", "flips", "nonzero", "flips/fc1", "nonzero/fc2"):
        assert isinstance(metrics[k], torch.Tensor) and metrics[k].dim() == 0, k
    assert system.check_sets() == []


def test_alpha_decays_each_epoch():
    spec = mlp_spec("binary")
    system = spec.compile(dtype=torch.float64)
    solver = make_solver("emsa-binary")
    state = solver.init(system)
    for e in range(3):
        state = solver.end_epoch(system, state, e)
    assert state["alpha"] == pytest.approx(1 - 0.001 * 0.95 ** 3)
    state_c = make_solver("emsa-binary", {"alpha_decay": 0.98}).init(system)
    assert state_c["alpha"] == 0.999


def test_mbar_initial_draw():
    system = mlp_spec("binary").compile(dtype=torch.float64)
    state = make_solver("emsa-binary").init(system)
    m = state["mbar"]["fc1.weight"]
    assert 0 < float(m.abs().max()) <= 1e-6 and float(m.min()) < 0 < float(m.max())


@pytest.mark.parametrize("inner", ["adam", "lbfgs", "gd"])
def test_inner_step_increases_the_augmented_hamiltonian(inner):
    spec = mlp_spec("real", act="tanh", bias=True)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    st = system.forward(x, update_stats=False)
    c = system.costates(st, y)
    names = [cc.name for cc in system.controls]
    ts = sorted({system.control[n].t for n in names})
    p_ref = reference_costates(system, st, c, ts)
    rho = 2.0

    def value():
        with torch.enable_grad():
            v, parts = augmented_sum(system, st, c, ts, rho, p_ref)
        return float(v.detach()), {k: float(p.detach()) for k, p in parts.items()}

    before, parts0 = value()
    assert parts0["state_error"] == 0 and parts0["costate_error"] < 1e-20
    solver = make_solver("emsa", {"rho": rho, "rho_real": rho, "inner": inner, "inner_steps": 3,
                                  "inner_lr": 1e-3 if inner != "lbfgs" else 0.1})
    state = solver.init(system)
    state, metrics = solver.step(system, state, x, y)
    after, parts1 = value()
    assert after > before
    assert parts1["state_error"] > 0 and parts1["costate_error"] > 0  # a real move
    assert float(metrics["state_error"]) == pytest.approx(parts1["state_error"], rel=1e-9)
    assert float(metrics["costate_error"]) == pytest.approx(parts1["costate_error"], rel=1e-9)


def test_feasibility_terms_match_their_definition():
    """The summed augmented Hamiltonian of a perturbed θ, against the definition evaluated
    directly: H − ρ/2 ‖x_{t+1} − f(x_t, θ)‖² − ρ/2 ‖p_t − ∇_x H_t(θ)‖²."""
    spec = mlp_spec("real", act="tanh", bias=True, bn=False)
    x, y = teacher_data(spec, 8)
    system = spec.compile(dtype=torch.float64, seed=0)
    st = system.forward(x)
    c = system.costates(st, y)
    ts = [0, 2]
    p_ref = reference_costates(system, st, c, ts)
    theta = {n: v.detach() + 0.1 for n, v in system.theta.items()}
    v, parts = augmented_sum(system, st, c, ts, 3.0, p_ref, theta)
    direct = 0.0
    for t in ts:
        xt = st.x[t].detach().requires_grad_(True)
        f = system.apply_stage(t, [xt], theta)
        H = (c.p[t + 1] * f).sum()
        (gx,) = torch.autograd.grad(H, xt)
        direct += float(H.detach()) - 1.5 * float((st.x[t + 1] - f).square().sum().detach())
        p_t = c.p[t] if c.p[t] is not None else system.grad_x_hamiltonian(
            t, [st.x[t]], c.p[t + 1], create_graph=False)[0]
        direct -= 1.5 * float((p_t - gx).square().sum().detach())
    assert float(v.detach()) == pytest.approx(direct, rel=1e-12)


# ---------------------------------------------------------------------- the paper's point
CENTRAL = dict(kind="binary", n_in=8, hidden=32, n_out=4, affine=False)


def j_sequence(overrides, steps, solver="emsa"):
    spec = mlp_spec(**CENTRAL)
    x, y = teacher_data(spec, 128)
    system = spec.compile(dtype=torch.float64, seed=1)
    s = make_solver(solver, overrides)
    state = s.init(system)
    js = []
    for _ in range(steps):
        state, m = s.step(system, state, x, y)
        js.append(float(m["J"]))
    return js, m, state


def test_basic_msa_oscillates_while_emsa_descends():
    """Full-batch, deterministic, binary weights (Li & Hao 2018): basic MSA (the argmax of H,
    = E-MSA with ρ = 0 and no averaging) jumps around and never gets below 0.75·J_0; E-MSA with
    ρ = 0.95 decreases J at every one of its first 15 steps and ends far below MSA."""
    msa, _, _ = j_sequence({}, 15, solver="msa")
    rho0, _, _ = j_sequence({"rho": 0.0, "alpha": 0.0, "mbar_init": 0.0}, 15)
    emsa, _, _ = j_sequence({"rho": 0.95, "alpha": 0.0, "mbar_init": 0.0}, 16)
    assert msa == pytest.approx(rho0)  # ρ = 0, M̄ = M is exactly basic MSA
    assert min(msa[1:]) > 0.75 * msa[0]
    assert any(b > a for a, b in zip(msa, msa[1:]))  # J rises at some step
    assert all(b < a for a, b in zip(emsa, emsa[1:])), emsa
    assert emsa[-1] < 0.5 * emsa[0] and emsa[-1] < min(msa)


def test_adaptive_rho_makes_basic_msa_monotone():
    js, m, state = j_sequence({"rho": 0.0, "alpha": 0.0, "mbar_init": 0.0,
                               "adaptive_rho": True, "rho_min": 0.01, "rho_up": 4.0}, 15)
    assert all(b <= a for a, b in zip(js, js[1:])), js
    assert js[-1] < 0.75 * js[0]
    for k in ("accepted", "dJ", "dJ_predicted", "state_error", "costate_error", "rho"):
        assert m[k].dim() == 0


def test_adaptive_rho_rejects_a_bad_step():
    """Basic-MSA-like steps (ρ ≈ 0): the second one raises J when nothing controls it; with
    ``adaptive_rho`` that step is rejected, θ restored and ρ multiplied by ``rho_up``."""
    spec = mlp_spec(**CENTRAL)
    x, y = teacher_data(spec, 128)
    over = {"rho": 1e-3, "alpha": 0.0, "mbar_init": 0.0}
    plain = spec.compile(dtype=torch.float64, seed=1)
    s = make_solver("emsa", over)
    st = s.init(plain)
    st, _ = s.step(plain, st, x, y)
    st, m0 = s.step(plain, st, x, y)
    J2 = float(plain.objective(plain.forward(x, update_stats=False), y)[0].detach())
    assert J2 > float(m0["J"])  # without control the second step raises J

    system = spec.compile(dtype=torch.float64, seed=1)
    s = make_solver("emsa", {**over, "adaptive_rho": True, "rho_up": 3.0})
    st = s.init(system)
    st, m1 = s.step(system, st, x, y)
    assert float(m1["accepted"]) == 1.0
    before = {k: v.detach().clone() for k, v in system.theta.items()}
    rho_used = float(st["rho"])
    st, m = s.step(system, st, x, y)
    assert float(m["accepted"]) == 0.0 and float(m["dJ"]) < 0
    for k, v in before.items():
        assert torch.equal(system.theta[k], v), k  # restored
    assert float(m["rho"]) == pytest.approx(rho_used)
    assert float(st["rho"]) == pytest.approx(3 * rho_used)


def test_adaptive_rho_lowers_rho_after_a_safe_step():
    spec = mlp_spec(**CENTRAL)
    x, y = teacher_data(spec, 128)
    system = spec.compile(dtype=torch.float64, seed=1)
    s = make_solver("emsa", {"rho": 0.99, "alpha": 0.0, "mbar_init": 0.0, "adaptive_rho": True})
    st = s.init(system)
    st, m = s.step(system, st, x, y)
    assert float(m["accepted"]) == 1.0 and float(m["dJ"]) >= float(m["dJ_predicted"])
    assert float(st["rho"]) == pytest.approx(0.99 * 0.9)


def test_adaptive_rho_continuous():
    spec = mlp_spec("real", act="tanh", bias=True, bn=False)
    x, y = teacher_data(spec, 64)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("emsa", {"rho": 1.0, "adaptive_rho": True, "inner": "gd",
                             "inner_lr": 50.0, "inner_steps": 2})
    st = s.init(system)
    js, rhos = [], []
    for _ in range(8):
        st, m = s.step(system, st, x, y)
        js.append(float(m["J"]))
        rhos.append(float(m["rho"]))
    assert all(b <= a for a, b in zip(js, js[1:]))
    assert max(rhos) > 1.0  # the huge inner step was rejected at least once


def test_levels_set_and_mixed_controls():
    spec = mlp_spec("{set: levels, values: [-1, -0.5, 0, 0.5, 1]}", l1=1e-4, bias=True)
    x, y = teacher_data(spec, 64)
    system = spec.compile(dtype=torch.float64, seed=0)
    s = make_solver("emsa", {"alpha": 0.5})
    st = s.init(system)
    for _ in range(5):
        st, m = s.step(system, st, x, y)
    assert system.check_sets() == []
    assert 0 < float(m["nonzero/fc1"]) <= 1


def test_presets_refuse_the_other_sets():
    with pytest.raises(SolverError, match="ternary"):
        make_solver("emsa-binary").init(mlp_spec("ternary").compile())
    with pytest.raises(SolverError, match="binary"):
        make_solver("emsa-ternary").init(mlp_spec("binary").compile())
    make_solver("emsa").init(mlp_spec("ternary").compile())  # the general preset takes both


def test_cuda_graph_setting():
    """cuda_graph takes false, true / update (the update graphed) or step (the whole step); on
    the CPU it changes nothing, whichever is set (the CUDA forms: tests/solvers/test_gpu.py)."""
    with pytest.raises(SolverError, match=r"cuda_graph.*one of false, true, update, step.*"
                                          r"did you mean 'step'"):
        make_solver("emsa-ternary", {"cuda_graph": "stpe"})
    spec = mlp_spec("ternary", l1=1e-4)
    x, y = teacher_data(spec, 32)
    res = []
    for graph in (False, True, "update", "step"):
        system = spec.compile(dtype=torch.float64, seed=0)
        s = make_solver("emsa-ternary", {"cuda_graph": graph})
        st = s.init(system)
        for _ in range(3):
            st, m = s.step(system, st, x, y)
        res.append((system.theta["fc1.weight"].clone(), float(m["loss"]), float(m["dH"])))
    for theta, loss, dH in res[1:]:
        assert torch.equal(theta, res[0][0]) and (loss, dH) == res[0][1:]


def test_emsa_preset_trains_a_residual_cnn_with_real_controls():
    """The general preset's augmented inner steps (ρ_real = 1e-5) must train a conv net: with
    ρ = 0.5 the feasibility penalty (summed over samples and entries, while p carries 1/S) left
    the model mnist-resnet at chance. A tiny residual CNN on a fixed synthetic batch."""
    from ocdl import Model
    torch.manual_seed(0)
    m = Model("tiny-res", input=(1, 8, 8))
    m.conv2d(4, 3, padding=1); m.relu()
    with m.residual(h=0.5):
        m.conv2d(4, 3, padding=1); m.batchnorm(); m.relu(); m.conv2d(4, 3, padding=1)
    m.avgpool(4); m.flatten(); m.dense(3); m.terminal("cross_entropy")
    system = m.compile(seed=0)
    x = torch.randn(60, 1, 8, 8)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0.1)
    solver = make_solver("emsa")
    state = solver.init(system)
    losses = []
    for _ in range(40):
        state, metrics = solver.step(system, state, x, y)
        losses.append(float(metrics["loss"]))
    assert float(metrics["rho_real"]) == pytest.approx(1e-5)
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0], losses
