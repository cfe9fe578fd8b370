"""Equation-defined systems: safe parsing, sympy-derived costates vs autograd, LQR vs Riccati."""
import itertools

import numpy as np
import pytest
import torch

import ocdl
from ocdl.models import model_path
from ocdl.solvers import make_solver
from ocdl.symbolic import EquationSystem

LQR = model_path("lqr-scalar")


def riccati(A, B, Q, R, Qf, T, x0):
    """Finite-horizon discrete LQR: controls u_t = −K_t x_t and the optimal cost x_0ᵀ P_0 x_0."""
    P = Qf
    Ks = []
    for _ in range(T):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
        Ks.append(K)
    Ks.reverse()
    x, us = x0, []
    for K in Ks:
        u = -K @ x
        us.append(u)
        x = A @ x + B @ u
    return np.array(us).reshape(-1), float(x0 @ P @ x0)


def lqr_scalar_answer():
    a, b, q, r, qf = 0.5, 0.5, 1.0, 2.0, 1.0
    return riccati(np.array([[a]]), np.array([[b]]), np.array([[q]]), np.array([[r]]),
                   np.array([[qf]]), 10, np.array([1.0]))


def lqr_2d_answer():
    dt, k, c, r, qf = 0.2, 1.0, 0.5, 0.5, 5.0
    A = np.array([[1.0, dt], [-dt * k, 1 - dt * c]])
    B = np.array([[0.0], [dt]])
    return riccati(A, B, np.eye(2), np.array([[r]]), qf * np.eye(2), 20, np.array([1.0, 0.0]))


def controls(system):
    return torch.cat([system.theta[c.name].detach() for c in system.controls]).numpy()


def solve(system, name, overrides, iters):
    s = make_solver(name, overrides)
    state = s.init(system)
    x0, y = system.batch()
    for _ in range(iters):
        state, _ = s.step(system, state, x0, y)
    return float(system.objective(system.forward(x0))[0].detach())


def test_compiles_to_a_system_with_the_usual_api():
    system = ocdl.load_spec(LQR).compile(dtype=torch.float64)
    assert isinstance(system, EquationSystem) and isinstance(system, ocdl.System)
    assert system.T == 10 and [c.name for c in system.controls][:2] == ["t0.u", "t1.u"]
    x0, y = system.batch()
    states = system.forward(x0)
    J, _ = system.objective(states)  # y is optional: the costs have no labels
    assert float(J.detach()) == pytest.approx(sum(0.5 ** (2 * t) for t in range(11)))
    assert system.check_sets() == []
    sd = system.state_dict()
    assert set(sd["theta"]) == set(system.theta)


@pytest.mark.parametrize("model", ["van-der-pol", "lqr-2d", "ternary-control"])
def test_sympy_costates_equal_autograd_and_hamiltonian(model):
    system = ocdl.load_spec(model_path(model)).compile(dtype=torch.float64, seed=3)
    with torch.no_grad():  # a non-trivial point
        for c in system.controls:
            system.theta[c.name].copy_(c.cset.project(torch.randn(c.shape, dtype=torch.float64)))
    x0, y = system.batch()
    states = system.forward(x0)
    co = system.costates(states, y)
    p, M = system.symbolic_costates(states)
    for t in range(1, system.T + 1):
        torch.testing.assert_close(p[t], co.p[t], rtol=1e-12, atol=1e-12)
    for k in M:
        torch.testing.assert_close(M[k], co.M[k], rtol=1e-12, atol=1e-12)
    # and both equal the gradient of the stage Hamiltonian (which holds the running cost)
    t = 2
    x = states.x[t].detach().requires_grad_(True)
    H = system.hamiltonian(t, x, co.p[t + 1].detach())
    gx, = torch.autograd.grad(H, x)
    torch.testing.assert_close(gx, p[t], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,overrides,iters", [
    ("msa", {"inner": "gd", "inner_steps": 3, "lr": 0.2}, 100),
    ("emsa", {"continuous": "augmented", "inner": "gd", "inner_steps": 3, "inner_lr": 0.2,
              "rho": 1.0}, 100),
    ("emsa-ocp", {}, 100)])
def test_scalar_lqr_matches_riccati(name, overrides, iters):
    us, Jstar = lqr_scalar_answer()
    system = ocdl.load_spec(LQR).compile(dtype=torch.float64)
    J = solve(system, name, overrides, iters)
    assert J == pytest.approx(Jstar, abs=1e-6)
    np.testing.assert_allclose(controls(system), us, atol=1e-6)


def test_2d_lqr_matches_riccati():
    us, Jstar = lqr_2d_answer()
    system = ocdl.load_spec(model_path("lqr-2d")).compile(dtype=torch.float64)
    J = solve(system, "emsa-ocp", {}, 120)
    assert J == pytest.approx(Jstar, abs=1e-6)
    np.testing.assert_allclose(controls(system), us, atol=1e-5)


def test_several_initial_states_are_samples_sharing_the_controls(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("ocdl: 1\nname: m\nsystem:\n  states: {x: [1.0, -2.0, 0.5]}\n"
                 "  controls: {u: real}\n  horizon: 3\n  dynamics: {x: x + u}\n"
                 "  cost: {running: u**2, terminal: x**2}\n")
    system = ocdl.load_spec(f).compile(dtype=torch.float64)
    x0, y = system.batch()
    assert x0.shape == (3, 1)
    J, _ = system.objective(system.forward(x0))
    assert float(J.detach()) == pytest.approx((1 + 4 + 0.25) / 3)


def test_yaml_round_trip(tmp_path):
    spec = ocdl.load_spec(model_path("van-der-pol"))
    f = tmp_path / "v.yaml"
    f.write_text(spec.to_yaml())
    assert ocdl.load_spec(f) == spec


BAD = [
    ("x: x + z*u", "unknown symbol 'z'"),
    ("x: __import__('os')", "names starting with '_'"),
    ("x: x.__class__", "not allowed"),
    ("x: x +* u", "syntax error"),
    ("x: \"lambda z: z\"", "keyword 'lambda'"),
    ("x: x[0]", "'[' is not allowed"),
    ("x: \"'a'\"", "not allowed"),
    ("x: sin.__globals__", "not allowed"),
]


@pytest.mark.parametrize("dyn,msg", BAD)
def test_bad_expressions_are_spec_errors_with_file_and_line(tmp_path, dyn, msg):
    f = tmp_path / "bad.yaml"
    f.write_text("ocdl: 1\nname: bad\nsystem:\n  states: {x: 1.0}\n  controls: {u: real}\n"
                 f"  horizon: 3\n  dynamics:\n    {dyn}\n  cost: {{running: x**2}}\n")
    with pytest.raises(ocdl.SpecError) as e:
        ocdl.load_spec(f)
    text = str(e.value)
    assert text.startswith(f"{f}:8: system.dynamics.x:"), text
    assert msg in text, text


def test_other_spec_errors(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("ocdl: 1\nname: bad\nsystem:\n  states: {x: 1.0}\n  controls: {u: real}\n"
                 "  horizon: 3\n  dynamics: {x: x + u}\n  cost:\n    terminal: x**2 + u\n")
    with pytest.raises(ocdl.SpecError, match=r"bad.yaml:9: system.cost.terminal: unknown "
                                             r"symbol 'u'"):
        ocdl.load_spec(f)
    f.write_text("ocdl: 1\nname: bad\nsystem:\n  states: {x: 1.0}\n  controls: {t: real}\n"
                 "  horizon: 3\n  dynamics: {x: x}\n  cost: {terminal: x**2}\n")
    with pytest.raises(ocdl.SpecError, match=r"bad.yaml:5: system.controls.t: 't' is reserved"):
        ocdl.load_spec(f)


def test_ternary_model_bruteforce_optimum_is_what_emsa_finds():
    system = ocdl.load_spec(model_path("ternary-control")).compile(dtype=torch.float64)
    best = min(
        (sum(x ** 2 + 0.1 * abs(u) for x, u in zip(
            np.cumsum([2.3] + [0.5 * v for v in seq])[:-1], seq))
         + (2.3 + 0.5 * sum(seq)) ** 2, seq)
        for seq in itertools.product((-1, 0, 1), repeat=4))
    J = solve(system, "emsa-ocp-discrete", {}, 30)
    assert J == pytest.approx(best[0], abs=1e-9)
