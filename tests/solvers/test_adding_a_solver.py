"""Adding a solver is one file and one preset (docs/adding-a-solver.md): the page's example
(examples/sign_descent/), copied to a temporary folder, found through its preset, checked against
autograd, and run by ocdl.api.solve."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ocdl.errors import SolverError
from ocdl.solvers import SOLVERS, list_solvers, make_solver

from conftest import mlp_spec, teacher_data

EXAMPLE = Path(__file__).parents[2] / "examples" / "sign_descent"


def doc_blocks() -> tuple[str, str]:
    """The example's solver file and its preset."""
    return ((EXAMPLE / "sign_descent.py").read_text(encoding="utf-8"),
            (EXAMPLE / "sign-descent.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def registry():
    """The registry as it was: a solver added by a test leaves with it."""
    saved = dict(SOLVERS)
    yield SOLVERS
    SOLVERS.clear()
    SOLVERS.update(saved)


@pytest.fixture
def sign_descent(tmp_path, registry) -> Path:
    code, preset = doc_blocks()
    (tmp_path / "sign_descent.py").write_text(code, encoding="utf-8")
    path = tmp_path / "sign-descent.yaml"
    path.write_text(preset, encoding="utf-8")
    return path


def test_the_example_is_one_file_and_one_preset():
    code, preset = doc_blocks()
    assert "@register_solver" in code and yaml.safe_load(preset)["module"] == "sign_descent.py"


def test_a_solver_from_a_file_trains_as_autograd_says(sign_descent):
    """Two steps of θ ← θ + lr·sign(M), the second at half the rate after end_epoch (lr_decay
    0.5 from the preset), against θ − lr·sign(∇J) with ∇J from autograd on a twin system."""
    assert "sign-descent" not in SOLVERS
    s = make_solver(sign_descent)
    assert s.name == "sign-descent" and "sign-descent" in SOLVERS
    assert s.hp == {"lr": 0.05, "lr_decay": 0.5, "lr_end": None}
    assert make_solver(sign_descent, {"step.lr": 0.1}).hp["lr"] == 0.1
    spec = mlp_spec("real", bn=False, bias=True)
    x, y = teacher_data(spec, 32)
    system, twin = spec.compile(dtype=torch.float64), spec.compile(dtype=torch.float64)
    state = s.init(system)
    for epoch, lr in ((1, 0.05), (2, 0.025)):
        J, _ = twin.objective(twin.forward(x), y)
        names = list(twin.theta)
        grads = torch.autograd.grad(J, [twin.theta[n] for n in names])
        with torch.no_grad():
            for n, g in zip(names, grads):
                twin.theta[n].sub_(torch.sign(g), alpha=lr)
        state, metrics = s.step(system, state, x, y)
        assert float(metrics["J"]) == pytest.approx(float(J.detach()), rel=1e-12)
        for n in names:
            assert torch.equal(system.theta[n], twin.theta[n]), (epoch, n)
        state = s.end_epoch(system, state, epoch, epoch / 2)
    assert state == {"iteration": 2, "lr_scale": 0.25}


def test_ocdl_solve_runs_the_preset_and_records_flat_settings(sign_descent, tmp_path):
    """The run layer takes the preset's path as a solver and records its flat settings."""
    import ocdl

    x, y = teacher_data(mlp_spec("real", bn=False, bias=True), 40)
    rows = [[round(float(v), 4) for v in row] for row in x]
    model = tmp_path / "tiny.yaml"
    model.write_text("ocdl: 1\nname: tiny-sign\ninput: [8]\nstages:\n"
                     "  - {name: fc1, op: dense, units: 16, bias: true, control: real}\n"
                     "  - {name: act1, op: relu}\n"
                     "  - {name: fc2, op: dense, units: 4, bias: true, control: real}\n"
                     "cost:\n  terminal: squared_hinge\n"
                     f"data:\n  name: inline\n  x: {rows}\n  y: {[int(v) for v in y]}\n"
                     "  batch_size: 10\n  preprocess: none\n", encoding="utf-8")
    r = ocdl.solve(str(model), str(sign_descent), epochs=2, device="cpu", out=tmp_path / "run")
    assert r.status == "completed" and len(r.history) == 2
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert config["solver"]["hp"] == {"lr": 0.05, "lr_decay": 0.5, "lr_end": None}


def test_a_preset_naming_a_missing_or_broken_file_says_so(tmp_path, registry):
    p = tmp_path / "mine.yaml"
    p.write_text("solver: mine\nmodule: nowhere.py\n")
    with pytest.raises(SolverError, match="solver module file not found: .*nowhere.py"):
        make_solver(p)
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    p.write_text("solver: mine\nmodule: broken.py\n")
    with pytest.raises(SolverError, match="loading the solver module failed: RuntimeError: oops"):
        make_solver(p)


def test_a_name_taken_by_another_class_is_refused(tmp_path, registry):
    (tmp_path / "clash.py").write_text(
        "from ocdl.solvers import Solver, register_solver\n"
        "@register_solver\nclass Clash(Solver):\n    name = 'emsa'\n    defaults = {}\n"
        "    def init(self, system): return {}\n"
        "    def step(self, system, state, x, y): return state, {}\n")
    p = tmp_path / "clash.yaml"
    p.write_text("solver: emsa\nmodule: clash.py\n")
    with pytest.raises(SolverError, match="solver name 'emsa' of .*Clash is taken by "
                                          "ocdl.solvers.methods.emsa.EMSA"):
        make_solver(p)


def test_solvers_are_found_by_scanning_and_by_entry_points(tmp_path, monkeypatch, registry):
    """A module dropped into ocdl.solvers.methods registers when the package is scanned; an
    installed package's entry point (group ocdl.solvers) registers its class; a broken plugin
    warns and is named when its solver is asked for."""
    from importlib.metadata import EntryPoint

    from ocdl.solvers import methods, registry as reg

    (tmp_path / "dropped_in.py").write_text(
        "from ocdl.solvers import register_solver\n"
        "from ocdl.solvers.methods.gradient import SGD\n"
        "@register_solver\nclass Dropped(SGD):\n    name = 'dropped-in'\n")
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path)])
    reg.discover()
    assert make_solver("dropped-in").hp["lr"] == 0.01

    (tmp_path / "plugin_pkg.py").write_text(
        "from ocdl.solvers.methods.gradient import Adam\n"
        "class Plugged(Adam):\n    name = 'plugged'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("plugged", "plugin_pkg:Plugged", reg.GROUP),
           EntryPoint("broken", "no_such_module_xyz", reg.GROUP)]
    monkeypatch.setattr(reg, "entry_points", lambda group: eps if group == reg.GROUP else [])
    monkeypatch.setattr(reg, "_plugins", None)
    with pytest.warns(UserWarning, match="solver plugin 'broken'"):
        assert "plugged" in list_solvers()
    assert make_solver("plugged", {"optimizer.lr": 0.1}).hp["lr"] == 0.1
    with pytest.raises(SolverError, match="plugins that failed to load: broken"):
        make_solver("brokn")
