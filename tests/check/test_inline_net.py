"""Inline data (``data: {name: inline, x, y}``) and ``ocdl check`` on a small tanh network:
validation errors, loading and feeding, the casadi export's derivatives against ocdl's costates,
and the check passing on the model tiny-tanh-net and failing on a perturbed solution."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ocdl.data import load_dataset, make_feeders
from ocdl.errors import SpecError
from ocdl.models import model_path
from ocdl.modelspec import load_spec
from ocdl.modelspec.validate import spec_from_dict

MODEL = model_path("tiny-tanh-net")


def _spec(data, input_=(1,), out=1):
    return {"ocdl": 1, "name": "t", "input": list(input_),
            "stages": [{"op": "dense", "units": 4}, {"op": "tanh"},
                       {"op": "dense", "units": out}],
            "cost": {"terminal": "mse", "running": [{"type": "l2", "weight": 1e-3}]},
            "data": data}


@pytest.mark.parametrize("data,match", [
    ({"name": "inline", "x": [[0.0, 1.0], [1.0]], "y": [0, 1]},
     r"data\.x\[1\]: ragged rows: this row has 1 numbers but the first row has 2"),
    ({"name": "inline", "x": [[0.0], [1.0], [2.0]], "y": [0, 1]},
     r"data\.y: 2 targets for 3 samples in data\.x"),
    ({"name": "inline", "x": [[0.0], ["a"]], "y": [0, 1]},
     r"data\.x\[1\]\[0\]: expected a finite number, got 'a'"),
    ({"name": "inline", "x": [[0.0], [True]], "y": [0, 1]},
     r"data\.x\[1\]\[0\]: expected a finite number, got True"),
    ({"name": "inline", "x": [[0.0], [1.0]], "y": [[0.5], ["b"]]},
     r"data\.y\[1\]\[0\]: expected a finite number, got 'b'"),
    ({"name": "inline", "x": [[0.0], [1.0]], "y": [[0.5], [1.0, 2.0]]},
     r"data\.y\[1\]: ragged rows"),
    ({"name": "inline", "x": [[0.0], [1.0]], "y": [0, -1]},
     r"data\.y\[1\]: expected a class label \(a non-negative integer\), got -1"),
    ({"name": "inline", "x": [], "y": []}, r"data\.x: expected a non-empty list of samples"),
    ({"name": "inline", "y": [0]}, r"data: inline data need 'x'"),
    ({"name": "inline", "x": [[0.0]], "y": [0], "x_test": [[1.0]]},
     r"data\.y_test: give both x_test and y_test"),
    ({"name": "inline", "x": [[0.0]], "y": [0], "x_test": [[1.0, 2.0]], "y_test": [0]},
     r"data\.x_test: test samples have 2 features but x has 1"),
    ({"name": "inline", "x": [[0.0]], "y": [0], "x_test": [[1.0]], "y_test": [[0.5]]},
     r"data\.y_test: y_test must be of the same kind as y \(class labels\)"),
    ({"name": "mnist", "x": [[0.0]]}, r"data\.x: 'x' gives inline samples; it needs name: inline"),
    ({"name": "inlin", "x": [[0.0]], "y": [0]}, r"did you mean 'inline'"),
])
def test_inline_validation_errors(data, match):
    with pytest.raises(SpecError, match=match):
        spec_from_dict(_spec(data))


def test_inline_error_names_the_file_and_line(tmp_path):
    text = MODEL.read_text().replace("[-0.25], [0.0]", "[-0.25, 1.0], [0.0]")
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.strip().startswith("x:"))
    with pytest.raises(SpecError, match=rf"bad\.yaml:{line}: data\.x\[3\]: ragged rows"):
        load_spec(p)


def test_inline_spec_round_trips_and_keeps_other_keys():
    spec = load_spec(MODEL)
    again = spec_from_dict(spec.to_dict())
    assert again == spec and again.data.inline == spec.data.inline
    assert spec.data.batch_size == 8 and spec.data.preprocess == "none"
    flat = spec_from_dict(_spec({"name": "inline", "x": [0.0, 0.5], "y": [0.25, 1]})).data
    assert flat.inline == ([[0.0], [0.5]], [[0.25], [1.0]])  # flat lists; a float → regression


def test_inline_loads_regression_and_labels_and_feeds_full_batch():
    spec = load_spec(MODEL)
    ds = load_dataset(spec.data)
    assert [len(p) for p in ds] == [8, 0, 8] and ds.classes == []
    assert ds.train.y.dtype == torch.float32 and ds.train.y.shape == (8, 1)
    assert torch.equal(ds.test.x, ds.train.x)  # test = train
    f = make_feeders(spec.data, (1,), "cpu")
    assert f.valid is None and len(f.train) == 1
    (xb, yb), = list(f.train.epoch(0))
    assert xb.shape == (8, 1) and sorted(xb[:, 0].tolist()) == [-1.0, -0.75, -0.5, -0.25, 0.0,
                                                                 0.25, 0.5, 0.75]
    d = _spec({"name": "inline", "x": [[0, 1], [1, 0], [1, 1], [0, 0]], "y": [1, 1, 0, 0],
               "x_test": [[0.5, 0.5]], "y_test": [1], "split": {"valid": 1}, "batch_size": 2},
              input_=(2,), out=2)
    ds = load_dataset(spec_from_dict(d).data)
    assert [len(p) for p in ds] == [3, 1, 1] and ds.classes == ["0", "1"]
    assert ds.train.y.dtype == torch.int64 and ds.test.x.tolist() == [[0.5, 0.5]]
    assert len(make_feeders(spec_from_dict(d).data, (2,), "cpu").train) == 2


def test_inline_solve_runs(tmp_path):
    from ocdl.cli import cli
    r = CliRunner().invoke(cli, ["solve", str(MODEL), "--solver", "adam", "--set", "lr=0.01",
                                 "--epochs", "20", "--out", str(tmp_path / "r"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "controls.pt").is_file()


# ---------------------------------------------------------------------- casadi
casadi = pytest.importorskip("casadi")

from ocdl.check import check  # noqa: E402
from ocdl.check.casadi_export import build_problem, gradients  # noqa: E402
from ocdl.check.runner import plan  # noqa: E402

MIXED = {"ocdl": 1, "name": "mix", "input": [2], "stages": [
    {"name": "fc1", "op": "dense", "units": 3},
    {"name": "a1", "op": "sigmoid"},
    {"name": "res", "op": "residual", "h": 0.5,
     "stages": [{"op": "dense", "units": 3}, {"op": "tanh"}]},
    {"name": "r", "op": "relu"},
    {"name": "ht", "op": "hardtanh", "inputs": ["a1"]},
    {"name": "sum", "op": "add", "inputs": ["r", "ht"]},
    {"name": "fc2", "op": "dense", "units": 2, "bias": False}],
    "cost": {"terminal": "mse", "running": [
        {"type": "l2", "weight": 1e-3}, {"type": "state_l2", "weight": 1e-2, "apply_to": ["fc2"]}]},
    "data": {"name": "inline", "x": [[0.1, -0.5], [0.7, 0.2], [-0.3, 0.9]],
             "y": [[0.0, 1.0], [1.0, 0.5], [0.2, 0.3]]}}


@pytest.mark.parametrize("spec", [load_spec(MODEL), spec_from_dict(MIXED)],
                         ids=["tiny-tanh-net", "all-ops"])
def test_costates_and_gradients_match_casadi_ad(spec):
    system = spec.compile(dtype=torch.float64, seed=1)
    p = plan(system)
    x0, y = p.x0, p.y
    problem = build_problem(system, x0, y)
    Jfun = casadi.Function("J", [problem.U, problem.delta], [problem.J])
    g = torch.Generator().manual_seed(0)
    for k in range(3):  # ocdl's initial controls, then random ones
        if k:
            with torch.no_grad():
                for c in system.controls:
                    system.theta[c.name].copy_(torch.randn(c.shape, generator=g,
                                                           dtype=torch.float64))
        states = system.forward(x0)
        co = system.costates(states, y)
        U = problem.vector(system.theta)
        J = float(system.objective(states, y, include_l1=True)[0].detach())
        assert J == pytest.approx(float(Jfun(U, np.zeros(problem.delta.shape[0]))), abs=1e-12)
        gU, ps = gradients(problem, U)
        assert np.abs(problem.vector(co.M) + gU).max() < 1e-9  # M = −∇J
        assert len(ps) == system.T
        for t in range(system.T):
            assert np.abs(co.p[t + 1].detach().numpy() - ps[t]).max() < 1e-9


def _canonical(U):
    """tiny-tanh-net's controls modulo its symmetries: each hidden unit's sign (w, b, v) →
    (−w, −b, −v) and the order of the hidden units."""
    w, b, v, c = U[:8], U[8:16], U[16:24], U[24:]
    s = np.where(w < 0, -1.0, 1.0)
    w, b, v = w * s, b * s, v * s
    o = np.argsort(w)
    return np.concatenate([w[o], b[o], v[o], c])


def test_check_tiny_tanh_net_passes():
    r = check(MODEL)  # defaults: adam lr 1e-2, 6000 full-batch iterations, IPOPT from θ_0
    assert r.solver == "adam" and r.iterations == 6000 and r.casadi_status == "Solve_Succeeded"
    assert r.ok and r.gap < 1e-8, (r.gap, r.ocdl.J, r.casadi.J)
    assert r.grad_diff < 1e-9 and r.costate_diff < 1e-9
    assert r.casadi.hamiltonian_gap < 1e-9 and r.ocdl.hamiltonian_gap < 1e-4  # ∇J ≈ 0 on both
    # the same local optimum up to the network's symmetries, not just an equal value
    assert np.abs(_canonical(r.ocdl.U) - _canonical(r.casadi.U)).max() < 1e-2


def test_check_cli_on_tiny_tanh_net_passes_and_fails_when_perturbed():
    from ocdl.cli import cli
    r = CliRunner().invoke(cli, ["check", str(MODEL)])
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output and "adam (6000 iterations)" in r.output
    r = CliRunner().invoke(cli, ["check", str(MODEL), "--perturb", "0.01"])
    assert r.exit_code == 1 and "check failed: objective gap" in r.output
    r = CliRunner().invoke(cli, ["check", str(MODEL), "--iters", "100"])  # not converged
    assert r.exit_code == 1 and "check failed" in r.output
