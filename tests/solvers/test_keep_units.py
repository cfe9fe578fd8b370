"""E-MSA's ``keep_units``: the ternary argmax over weights whose output units keep a non-zero
entry, checked against enumeration of every row, and the dead units a run reports."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocdl.api import solve
from ocdl.errors import SolverError
from ocdl.models import model_path
from ocdl.solvers import make_solver
from ocdl.solvers.hamiltonian_argmax import closed_forms

from conftest import brute_rows_with_a_nonzero, conv_net, mlp_spec, teacher_data

QUICK = model_path("quickstart")


def _mbar_and_rho_k(spec, x, y, mbar0):
    """M̄ = α M̄₀ − (1 − α) ∇_θ J (α = 0.6, gradient from autograd) and ρ_k (ρ = 0.25) per
    weight, at the initial θ."""
    ref = spec.compile(dtype=torch.float64, seed=0)
    J, _ = ref.objective(ref.forward(x), y)
    names = ("fc1.weight", "fc2.weight")
    grads = dict(zip(names, torch.autograd.grad(J, [ref.theta[n] for n in names])))
    out = {}
    for n in names:
        mbar = 0.6 * mbar0[n] + 0.4 * (-grads[n])
        th = ref.theta[n].detach()
        out[n] = (mbar, th, closed_forms.rho_k(mbar, th, 0.25))
    return out


@pytest.mark.parametrize("lam", [0.02, 0.05])  # some units die; all die
def test_one_step_is_the_argmax_over_weights_without_dead_units(lam):
    spec = mlp_spec("ternary", n_in=8, hidden=6, n_out=4, l1=lam)
    x, y = teacher_data(spec, 32)
    system = spec.compile(dtype=torch.float64, seed=0)
    solver = make_solver("emsa-ternary", {"alpha": 0.6, "alpha_batch_size": None,
                                          "keep_units": True})
    state = solver.init(system)
    ref = _mbar_and_rho_k(spec, x, y, state["mbar"])
    free = {n: closed_forms.ternary_update(mb, th, rk, lam) for n, (mb, th, rk) in ref.items()}
    assert any(bool(t.eq(0).all(1).any()) for t in free.values())  # the paper's rule kills
    state, metrics = solver.step(system, state, x, y)
    for n, (mb, th, rk) in ref.items():
        expected = brute_rows_with_a_nonzero(mb, th, rk, lam)
        assert torch.equal(system.theta[n], expected), n
        alive = ~free[n].eq(0).all(1)
        assert torch.equal(expected[alive], free[n][alive])  # only dead rows differ
        stage = n.split(".")[0]
        assert float(metrics[f"nonzero/{stage}"]) == pytest.approx(
            float((expected != 0).sum()) / expected.numel())


def test_without_dead_units_the_step_is_the_papers():
    spec = mlp_spec("ternary", n_in=8, hidden=6, n_out=4, l1=1e-5)
    x, y = teacher_data(spec, 32)
    out = []
    for keep in (False, True):
        system = spec.compile(dtype=torch.float64, seed=0)
        solver = make_solver("emsa-ternary", {"alpha": 0.6, "keep_units": keep})
        state = solver.init(system)
        solver.step(system, state, x, y)
        out.append({n: t.detach().clone() for n, t in system.theta.items()})
    assert not any(bool(t.eq(0).all(1).any()) for n, t in out[0].items() if t.dim() == 2)
    for n in out[0]:
        assert torch.equal(out[0][n], out[1][n]), n


def _dead_units(system):
    return {n: int(t.flatten(1).eq(0).all(1).sum()) for n, t in system.theta.items()
            if t.dim() >= 2}


def test_on_a_conv_net_pruned_hard_no_unit_dies():
    """The small conv net with BatchNorm, λ scaled up fast towards 0.2 % non-zero: with the
    paper's rule convolution channels and dense units die within eight steps, with
    ``keep_units`` none does (CPU: in slices of whole rows)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (48,), generator=g)
    dead = []
    for keep in (False, True):
        system = conv_net("ternary").compile(dtype=torch.float64, seed=0)
        s = make_solver("emsa-ternary", {"nonzero_target": 0.002, "nonzero_rate": 1.0,
                                         "keep_units": keep})
        st = s.init(system)
        worst = 0
        for i in range(8):
            st, _ = s.step(system, st, x[i % 2::2][:24], y[i % 2::2][:24])
            worst = max(worst, sum(_dead_units(system).values()))
        dead.append(worst)
    assert dead[0] > 0 and dead[1] == 0


@pytest.mark.parametrize("kind,over,match", [
    ("binary", {"keep_units": True}, "keep_units.*has none"),
    ("real", {"keep_units": True}, "keep_units.*has none"),
    ("ternary", {"keep_units": "yes"}, "keep_units"),
])
def test_bad_settings_say_what_to_change(kind, over, match):
    system = mlp_spec(kind, l1=1e-3 if kind == "ternary" else 0.0).compile(dtype=torch.float64)
    with pytest.raises(SolverError, match=match):
        make_solver("emsa", over).init(system)


def _epochs(run_dir):
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "epoch"]


def test_a_run_reports_dead_units_and_keep_units_leaves_none(tmp_path):
    """λ = 1e-3 on the quickstart net prunes it to nothing: every unit dies with the paper's
    rule, none with ``keep_units``, which keeps about one entry in each of its 522 units."""
    spec = tmp_path / "strong.yaml"
    spec.write_text(QUICK.read_text().replace("weight: 1.0e-6", "weight: 1.0e-3"))
    common = dict(solver="emsa-ternary", epochs=1, quiet=True, overrides={"data.limit": 500})
    solve(str(spec), out=str(tmp_path / "free"), **common)
    solve(str(spec), out=str(tmp_path / "keep"), **{**common, "overrides": {
        "data.limit": 500, "keep_units": True}})
    free, keep = _epochs(tmp_path / "free")[-1], _epochs(tmp_path / "keep")[-1]
    for stage in ("fc1", "fc2", "fc3"):
        assert free[f"dead/{stage}"] == 1.0 and free[f"nonzero/{stage}"] == 0.0
        assert keep[f"dead/{stage}"] == 0.0
    nnz = keep["nonzero"] * (784 * 256 + 256 * 256 + 2560)
    assert 256 + 256 + 10 <= round(nnz) < 2 * (256 + 256 + 10)


@pytest.mark.parametrize("chunk", [5, 40, 1 << 19])  # < one conv row (27, 72), a few rows, all
def test_sliced_banks_keep_units_as_the_whole_tensor_form(chunk):
    """The CPU form cuts kept layers into slices of whole rows (the argmax sizes the scratch to hold
    the longest row): the same θ, ρ_k and metrics as the whole-tensor form, bit for bit in
    float64, while λ scaled up to 10 would prune every unit: each keeps exactly one entry."""
    from ocdl.solvers.hamiltonian_argmax import FiniteSetArgmax
    g = torch.Generator().manual_seed(1)
    systems = [conv_net("ternary").compile(dtype=torch.float64, seed=0) for _ in range(2)]
    names = [c.name for c in systems[0].controls if c.cset.discrete]
    banks = [FiniteSetArgmax(s, names, chunk=c, keep_units=True)
             for s, c in zip(systems, (None, chunk))]
    mbar = [{n: torch.zeros_like(s.theta[n]) for n in names} for s in systems]
    for step in range(4):
        M = {n: torch.randn(systems[0].theta[n].shape, generator=g, dtype=torch.float64)
             for n in names}
        out = []
        for s, b, mb in zip(systems, banks, mbar):
            metrics, dH = b.step(s, {n: m.clone() for n, m in M.items()}, mb, 0.5,
                                 torch.tensor(0.25, dtype=torch.float64),
                                 torch.tensor(1e7, dtype=torch.float64))
            out.append((metrics, dH))
        for n in names:
            assert torch.equal(systems[0].theta[n], systems[1].theta[n]), (step, n)
        assert float(out[0][1]) == pytest.approx(float(out[1][1]), rel=1e-12)
        for k, v in out[0][0].items():
            assert float(v) == pytest.approx(float(out[1][0][k]), rel=1e-12), k
        assert all(int(systems[0].theta[n].count_nonzero()) == systems[0].theta[n].shape[0]
                   for n in names), step
