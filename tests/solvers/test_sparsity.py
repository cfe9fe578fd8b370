"""E-MSA's ``nonzero_target``: the l1 weights scaled by a multiplier tuned by dual ascent."""
from __future__ import annotations

import math

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers import make_solver
from ocdl.solvers.hamiltonian_argmax import closed_forms
from ocdl.solvers.sparsity_target import SCALE_MAX, SCALE_MIN, NonzeroTarget
from ocdl.modelspec import loads_spec

from conftest import mlp_spec, teacher_data

KEY = NonzeroTarget.KEY
LEVELS = (-1, -0.5, 0, 0.5, 1)


def _expected_ternary(spec, x, y, mbar0, lams):
    """θ after one E-MSA step with α = 0.6, ρ = 0.25 at the l1 weights ``lams`` (per control of
    fc1, fc2), from M̄ = α M̄₀ − (1 − α) ∇_θ J with the gradient from autograd."""
    ref = spec.compile(dtype=torch.float64, seed=0)
    J, _ = ref.objective(ref.forward(x), y)
    names = ("fc1.weight", "fc2.weight")
    grads = dict(zip(names, torch.autograd.grad(J, [ref.theta[n] for n in names])))
    out = {}
    for n, lam in zip(names, lams):
        mbar = 0.6 * mbar0[n] + 0.4 * (-grads[n])
        th = ref.theta[n].detach()
        out[n] = closed_forms.ternary_update(mbar, th, closed_forms.rho_k(mbar, th, 0.25), lam)
    return out


def _expected_levels_fc1(spec, x, y, mbar0, lam):
    """The {−1, −½, 0, ½, 1} layer fc1 after one E-MSA step with α = 0.5, ρ = 0.5 at the l1
    weight ``lam`` (the general argmax, gradient from autograd)."""
    ref = spec.compile(dtype=torch.float64, seed=0)
    J, _ = ref.objective(ref.forward(x), y)
    (g,) = torch.autograd.grad(J, [ref.theta["fc1.weight"]])
    th0 = ref.theta["fc1.weight"].detach()
    mbar = 0.5 * mbar0 - 0.5 * g
    return closed_forms.levels_argmax(mbar, th0, LEVELS, closed_forms.rho_k(mbar, th0, 0.5, LEVELS), lam)


def test_one_step_uses_the_scaled_lambda_and_moves_the_scale_by_dual_ascent():
    """With log s = log 3 in the state, the step is the ternary rule at λ = 3·1e-3 (checked
    against closed_forms.ternary_update on M̄ from autograd), and the new log s is
    log 3 + η·log(ν/B) with ν counted from the new θ by hand."""
    spec = mlp_spec("ternary", l1=1e-3)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"alpha": 0.6, "alpha_batch_size": None,
                                          "nonzero_target": 0.1, "nonzero_rate": 0.05})
    state = solver.init(system)
    assert float(state[KEY]) == 0.0
    state[KEY].fill_(math.log(3.0))
    expected = _expected_ternary(spec, x, y, state["mbar"], (3e-3, 3e-3))
    state, metrics = solver.step(system, state, x, y)
    nnz = total = 0
    for n, exp in expected.items():
        assert torch.equal(system.theta[n], exp), n
        nnz += int((exp != 0).sum())
        total += exp.numel()
    nu = nnz / total
    assert float(metrics["nonzero/target_set"]) == pytest.approx(nu, rel=1e-12)
    assert float(state[KEY]) == pytest.approx(math.log(3.0) + 0.05 * math.log(nu / 0.1),
                                              rel=1e-12)
    assert float(metrics["lambda_scale"]) == pytest.approx(math.exp(float(state[KEY])))


def test_the_scale_stays_within_its_bounds():
    system = mlp_spec("ternary", l1=1e-3).compile(dtype=torch.float64)
    solver = make_solver("emsa-ternary", {"nonzero_target": 0.5})
    solver.init(system)
    ctl = solver.sparsity.control
    log_s = torch.zeros((), dtype=torch.float64)
    dense = {k: torch.tensor(1.0, dtype=torch.float64) for k in ctl.keys}
    for _ in range(2000):
        ctl.update(log_s, dense)  # ν = 1 > 0.5 every time: s grows to its cap
    assert math.exp(float(log_s)) == pytest.approx(SCALE_MAX)
    empty = {k: torch.tensor(0.0, dtype=torch.float64) for k in ctl.keys}
    for _ in range(200):
        ctl.update(log_s, empty)  # ν = 0 < 0.5 (log ν floored): s falls to its floor
    assert math.exp(float(log_s)) == pytest.approx(SCALE_MIN)


@pytest.mark.parametrize("target", [0.05, 0.25, 0.6])
def test_training_holds_the_non_zero_fraction_at_the_target(target):
    """The model's λ alone leaves about 41 % of this net's weights non-zero; with a target the
    tuned λ brings the fraction there (up or down) and holds it for the last 50 steps."""
    spec = mlp_spec("ternary", n_in=16, hidden=64, n_out=4, l1=3e-5)
    x, y = teacher_data(spec, 256)
    runs = {}
    for tgt in (None, target):
        system = spec.compile(dtype=torch.float64, seed=0)
        solver = make_solver("emsa-ternary", {"nonzero_target": tgt, "nonzero_rate": 0.05,
                                              "alpha_batch_size": None})  # rates per step
        state = solver.init(system)
        nz = []
        for i in range(300):
            state, m = solver.step(system, state, x[i % 4::4], y[i % 4::4])
            nz.append(float(m["nonzero"]))
        runs[tgt] = (nz, state)
    free = sum(runs[None][0][-50:]) / 50
    held = runs[target][0][-50:]
    assert 0.35 < free < 0.47  # the fixed λ lands well away from every target
    assert abs(sum(held) / 50 - target) < 0.15 * target
    assert max(abs(v - target) for v in held) < 0.25 * target
    scale = math.exp(float(runs[target][1][KEY]))
    assert (scale > 1) == (free > target)  # λ went up to sparsify, down to densify


LEVELS_NET = """
ocdl: 1
name: levels-target
input: [8]
stages:
  - {name: fc1, op: dense, units: 16, bias: false, control: {set: levels, values: [-1, -0.5, 0, 0.5, 1]}}
  - {name: bn1, op: batchnorm}
  - {name: act1, op: relu}
  - {name: fc2, op: dense, units: 4, bias: false, control: ternary}
cost:
  terminal: squared_hinge
  running:
    - {type: l1, weight: 1.0e-3, apply_to: [fc1, fc2]}
"""


def test_a_levels_set_with_zero_is_scaled_too():
    """A {−1, −½, 0, ½, 1} layer takes the general argmax at λ·s."""
    spec = loads_spec(LEVELS_NET)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa", {"nonzero_target": 0.2, "alpha": 0.5})
    state = solver.init(system)
    state[KEY].fill_(math.log(2.0))
    exp = _expected_levels_fc1(spec, x, y, state["mbar"]["fc1.weight"], 2e-3)
    state, m = solver.step(system, state, x, y)
    assert torch.equal(system.theta["fc1.weight"], exp)
    assert "lambda_scale" in m


def test_nonzero_start_holds_the_models_lambda_until_that_fraction_of_the_run():
    """With nonzero_start = 0.5 the scale stays exactly 1 (log s = 0) while the run is less than
    half done, though ν is far from B, and moves by dual ascent from the epoch that ends half of
    it; the switch is one of the numbers a captured update bakes in, so the graph recaptures."""
    spec = mlp_spec("ternary", l1=1e-5)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"nonzero_target": 0.02, "nonzero_rate": 0.05,
                                          "nonzero_start": 0.5, "alpha_batch_size": None})
    state = solver.init(system)
    assert state["nonzero_gain"] == 0.0
    waiting = solver._graph_scalars(state, 1.0)
    for progress in (0.25, 0.4):
        for _ in range(3):
            state, m = solver.step(system, state, x, y)
            assert float(state[KEY]) == 0.0 and float(m["lambda_scale"]) == 1.0
        assert float(m["nonzero/target_set"]) > 0.1  # far above B: the ascent would move s
        state = solver.end_epoch(system, state, 1, progress=progress)
        assert state["nonzero_gain"] == 0.0
    state = solver.end_epoch(system, state, 3, progress=0.5)
    assert state["nonzero_gain"] == 1.0
    assert solver._graph_scalars(state, 1.0) != waiting
    state, m = solver.step(system, state, x, y)
    nu = float(m["nonzero/target_set"])
    assert float(state[KEY]) == pytest.approx(0.05 * math.log(nu / 0.02), rel=1e-12)
    with pytest.raises(SolverError, match="nonzero_start.*progress"):
        solver.end_epoch(system, state, 4)


SMALL_MNIST_NET = """
ocdl: 1
name: small-ternary
input: [784]
stages:
  - {name: fc1, op: dense, units: 32, bias: false, control: ternary}
  - {name: bn1, op: batchnorm}
  - {name: relu1, op: relu}
  - {name: fc2, op: dense, units: 10, bias: false, control: ternary}
cost:
  terminal: squared_hinge
  running: [{type: l1, weight: 1.0e-6}]
data: {name: mnist-subset, batch_size: 50, limit: 150}
"""


def _small_mnist_net(tmp_path):
    """A 784-32-10 ternary net on 150 images of the embedded MNIST subset, as a spec file."""
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL_MNIST_NET)
    return spec


def test_nonzero_start_in_a_run_keeps_the_scale_at_one_for_its_first_half(tmp_path):
    from ocdl.api import solve
    spec = _small_mnist_net(tmp_path)
    r = solve(spec, "emsa-ternary", epochs=4, device="cpu", out=tmp_path / "run",
              overrides={"nonzero_target": 0.02, "nonzero_start": 0.5})
    scales = [h["lambda_scale"] for h in r.history]
    assert scales[:2] == [1.0, 1.0] and all(s > 1.0 for s in scales[2:]), scales


def _count_nonzero(system, names=("fc1.weight", "fc2.weight")):
    return (sum(int((system.theta[n] != 0).sum()) for n in names)
            / sum(system.theta[n].numel() for n in names))


def test_nonzero_end_anneals_the_target_from_where_the_net_is_to_b():
    """With nonzero_start = 0.4 and nonzero_end = 0.8 the target stays B until an epoch ends 40 %
    of the run; there ν₀ is counted from θ and the target is ν₀ (so λ does not jump), then
    B + (ν₀ − B)(1 − τ)³ with τ = (π − 0.4)/0.4, and B from 80 % on. A step moves log s by
    η·log(ν/B_π) and reports B_π as ``nonzero/target``."""
    spec = mlp_spec("ternary", l1=1e-5)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"nonzero_target": 0.02, "nonzero_rate": 0.05,
                                          "nonzero_start": 0.4, "nonzero_end": 0.8,
                                          "alpha_batch_size": None})
    state = solver.init(system)
    target = NonzeroTarget.TARGET_KEY
    state, m = solver.step(system, state, x, y)
    assert float(m["nonzero/target"]) == pytest.approx(0.02)
    state = solver.end_epoch(system, state, 0, progress=0.2)
    assert float(state[target]) == pytest.approx(math.log(0.02))
    assert NonzeroTarget.FROM_KEY not in state
    state = solver.end_epoch(system, state, 1, progress=0.4)
    nu0 = _count_nonzero(system)
    assert float(state[NonzeroTarget.FROM_KEY]) == pytest.approx(nu0, rel=1e-12)
    assert float(state[target]) == pytest.approx(math.log(nu0), rel=1e-12)
    state = solver.end_epoch(system, state, 2, progress=0.6)  # τ = 1/2
    goal = 0.02 + (nu0 - 0.02) * 0.125
    assert float(state[target]) == pytest.approx(math.log(goal), rel=1e-12)
    log_s = float(state[KEY])
    state, m = solver.step(system, state, x, y)
    nu = float(m["nonzero/target_set"])
    assert nu == pytest.approx(_count_nonzero(system), rel=1e-12)
    assert float(m["nonzero/target"]) == pytest.approx(goal, rel=1e-12)
    assert float(state[KEY]) == pytest.approx(log_s + 0.05 * math.log(nu / goal), rel=1e-12)
    state = solver.end_epoch(system, state, 3, progress=0.9)
    assert float(state[target]) == pytest.approx(math.log(0.02), rel=1e-12)
    assert float(state[NonzeroTarget.FROM_KEY]) == pytest.approx(nu0, rel=1e-12)  # kept


def test_nonzero_end_from_the_first_step_starts_at_the_initial_net():
    """nonzero_start = 0: ν₀ is the initial θ's non-zero fraction, and the first step's ascent
    is η·log(ν₁/ν₀), not η·log(ν₁/B)."""
    spec = mlp_spec("ternary", l1=1e-5)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    nu0 = _count_nonzero(system)
    solver = make_solver("emsa-ternary", {"nonzero_target": 0.02, "nonzero_rate": 0.05,
                                          "nonzero_end": 0.5, "alpha_batch_size": None})
    state = solver.init(system)
    assert float(state[NonzeroTarget.TARGET_KEY]) == pytest.approx(math.log(nu0), rel=1e-12)
    state, m = solver.step(system, state, x, y)
    nu1 = float(m["nonzero/target_set"])
    assert float(state[KEY]) == pytest.approx(0.05 * math.log(nu1 / nu0), rel=1e-12)
    with pytest.raises(SolverError, match="nonzero_end.*progress"):
        solver.end_epoch(system, state, 0)


def test_an_annealed_target_in_a_run_falls_to_b_and_is_resumed(tmp_path):
    """In a 4-epoch run with nonzero_end = 0.75 the target (set at each epoch's end for the
    next; logged as the epoch's mean) falls from the initial net's non-zero fraction to B for
    the last epoch. The checkpoint carries ν₀ and the target, and a resumed run keeps both."""
    from ocdl.api import solve
    from ocdl.run.checkpoint import read_saved
    spec = _small_mnist_net(tmp_path)
    over = {"nonzero_target": 0.05, "nonzero_end": 0.75}
    r = solve(spec, "emsa-ternary", epochs=4, device="cpu", out=tmp_path / "run",
              overrides=over)
    targets = [h["nonzero/target"] for h in r.history]
    assert targets[0] > 0.3 and targets[0] > targets[1] > targets[2] > targets[3]
    assert targets[3] == pytest.approx(0.05, rel=1e-6)
    solve(spec, "emsa-ternary", epochs=2, device="cpu", out=tmp_path / "half",
          overrides=over)
    saved = read_saved(tmp_path / "half" / "last.pt")["solver_state"]
    nu0 = float(saved[NonzeroTarget.FROM_KEY])
    assert nu0 == pytest.approx(targets[0], rel=1e-6)  # the first epoch steers to ν₀
    assert float(saved[NonzeroTarget.TARGET_KEY]) == pytest.approx(math.log(0.05), rel=1e-6)
    resumed = solve(None, None, epochs=4, device="cpu", resume=tmp_path / "half")
    assert [h["nonzero/target"] for h in resumed.history[2:]] == pytest.approx([0.05, 0.05],
                                                                              rel=1e-6)
    saved = read_saved(tmp_path / "half" / "last.pt")["solver_state"]
    assert float(saved[NonzeroTarget.FROM_KEY]) == nu0


def test_nonzero_floor_scales_each_layers_lambda_and_moves_its_factor():
    """With log s = log 3 and the floor factors c = (½, 1) in the state, fc1 takes the ternary
    rule at λ = 3·½·1e-3 and fc2 at 3·1e-3 (against closed_forms.ternary_update on M̄ from
    autograd); then log c_i ← min(0, log c_i + η·log(ν_i/f)) with ν_i counted by hand."""
    spec = mlp_spec("ternary", l1=1e-3)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"alpha": 0.6, "alpha_batch_size": None,
                                          "nonzero_target": 0.1, "nonzero_rate": 0.05,
                                          "nonzero_floor": 0.08})
    state = solver.init(system)
    floor = NonzeroTarget.FLOOR_KEY
    assert state[floor].tolist() == [0.0, 0.0]
    state[KEY].fill_(math.log(3.0))
    state[floor].copy_(torch.tensor([math.log(0.5), 0.0], dtype=torch.float64))
    names = ("fc1.weight", "fc2.weight")
    expected = _expected_ternary(spec, x, y, state["mbar"], (3e-3 * 0.5, 3e-3))
    state, metrics = solver.step(system, state, x, y)
    for n, exp in expected.items():
        assert torch.equal(system.theta[n], exp), n
    for i, (n, c) in enumerate(zip(names, (0.5, 1.0))):
        nu_i = _count_nonzero(system, (n,))
        want = min(0.0, math.log(c) + 0.05 * math.log(nu_i / 0.08))
        assert float(state[floor][i]) == pytest.approx(want, rel=1e-12, abs=1e-15), n
        assert float(metrics[f"lambda_floor/{n.split('.')[0]}"]) == pytest.approx(math.exp(want))


def test_a_floor_keeps_a_layer_that_one_scale_starves_at_it():
    """Held at 5 % non-zero by one common scale, this net's output layer ends at 3.5 %; with
    nonzero_floor = 4.5 % it keeps about 4.5 % (its λ factor below 1) and the total stays near
    the target."""
    spec = mlp_spec("ternary", n_in=16, hidden=64, n_out=4, l1=3e-5)
    x, y = teacher_data(spec, 256)
    last = {}
    for floor in (None, 0.045):
        system = spec.compile(dtype=torch.float64, seed=0)
        solver = make_solver("emsa-ternary", {"nonzero_target": 0.05, "nonzero_rate": 0.05,
                                              "nonzero_floor": floor, "alpha_batch_size": None})
        state = solver.init(system)
        fc2, total = [], []
        for i in range(300):
            state, m = solver.step(system, state, x[i % 4::4], y[i % 4::4])
            fc2.append(float(m["nonzero/fc2"]))
            total.append(float(m["nonzero"]))
        last[floor] = (sum(fc2[-50:]) / 50, min(fc2[-50:]), sum(total[-50:]) / 50, m)
    assert last[None][0] < 0.038  # starved below the floor without it
    mean, low, total, m = last[0.045]
    assert abs(mean - 0.045) < 0.002 and low > 0.04
    assert abs(total - 0.05) < 0.005
    assert float(m["lambda_floor/fc2"]) < 1.0 and float(m["lambda_floor/fc1"]) == 1.0


def test_a_floor_on_a_levels_layer_scales_its_lambda():
    """The general argmax (a {−1, −½, 0, ½, 1} layer) takes its own factor too."""
    spec = loads_spec(LEVELS_NET)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa", {"nonzero_target": 0.2, "alpha": 0.5, "nonzero_floor": 0.1})
    state = solver.init(system)
    state[KEY].fill_(math.log(2.0))
    names = solver.sparsity.control.names  # the argmax's order: ternary fc2 first, then levels fc1
    state[NonzeroTarget.FLOOR_KEY].copy_(torch.tensor(
        [math.log(0.25) if n == "fc1.weight" else 0.0 for n in names], dtype=torch.float64))
    exp = _expected_levels_fc1(spec, x, y, state["mbar"]["fc1.weight"], 2e-3 * 0.25)
    solver.step(system, state, x, y)
    assert torch.equal(system.theta["fc1.weight"], exp)


@pytest.mark.parametrize("over,kind,l1,match", [
    ({"nonzero_target": 0.02, "nonzero_start": 1.0}, "ternary", 1e-3, "in \\[0, 1\\)"),
    ({"nonzero_target": 0.02, "nonzero_start": True}, "ternary", 1e-3, "nonzero_start"),
    ({"nonzero_start": 0.3}, "ternary", 1e-3, "delays nonzero_target, which is not set"),
    ({"nonzero_target": 0.02, "nonzero_start": 0.5, "nonzero_end": 0.5}, "ternary", 1e-3,
     "nonzero_end.*in \\(nonzero_start, 1\\]"),
    ({"nonzero_target": 0.02, "nonzero_end": 1.5}, "ternary", 1e-3, "nonzero_end"),
    ({"nonzero_target": 0.02, "nonzero_end": True}, "ternary", 1e-3, "nonzero_end"),
    ({"nonzero_end": 0.8}, "ternary", 1e-3, "anneals nonzero_target, which is not set"),
    ({"nonzero_target": 0.02, "nonzero_floor": 0.02}, "ternary", 1e-3,
     "nonzero_floor.*\\(0, nonzero_target\\)"),
    ({"nonzero_target": 0.02, "nonzero_floor": 0}, "ternary", 1e-3, "nonzero_floor"),
    ({"nonzero_floor": 0.01}, "ternary", 1e-3, "nonzero_target is not set"),
    ({"nonzero_target": 0.02}, "ternary", 0.0, "positive l1 cost"),
    ({"nonzero_target": 0.02}, "binary", 1e-3, "0 among its values"),
    ({"nonzero_target": 0.02}, "real", 0.0, "all real"),
    ({"nonzero_target": 0.02, "adaptive_rho": True}, "ternary", 1e-3, "adaptive_rho"),
    ({"nonzero_target": 2}, "ternary", 1e-3, "fraction in \\(0, 1\\)"),
    ({"nonzero_target": 0.02, "nonzero_rate": 0}, "ternary", 1e-3, "nonzero_rate"),
    ({"nonzero_target": 0.02, "nonzero_rate": True}, "ternary", 1e-3, "nonzero_rate"),
])
def test_bad_settings_say_what_to_change(over, kind, l1, match):
    system = mlp_spec(kind, l1=l1).compile(dtype=torch.float64)
    with pytest.raises(SolverError, match=match):
        make_solver("emsa", over).init(system)
