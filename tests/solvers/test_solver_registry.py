"""Presets, the registry and hyperparameter checking."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocdl.errors import SolverError
from ocdl.solvers import SOLVERS, Solver, list_solvers, make_solver, solver_info
from ocdl.solvers.presets import presets_dir, read_preset

PRESETS = ["msa", "emsa", "emsa-binary", "emsa-ternary", "sgd", "adam", "binaryconnect", "twn",
           "bop"]


def test_presets_exist_and_build():
    assert presets_dir().name == "solvers" and presets_dir().is_dir()
    names = list_solvers()
    for p in PRESETS:
        assert p in names
        s = make_solver(p)
        assert isinstance(s, Solver) and s.name in SOLVERS
    assert "adamw" in names  # a class without a preset


def test_presets_of_an_installed_wheel_are_found(tmp_path, monkeypatch):
    """Without the checkout's solvers/ folder, presets come from <prefix>/share/ocdl/solvers,
    where pyproject's data-files put every solvers/*.yaml."""
    import shutil
    import sys
    import tomllib

    from ocdl.solvers import presets
    share = tmp_path / "share" / "ocdl" / "solvers"
    share.mkdir(parents=True)
    shutil.copy(presets_dir() / "emsa-ternary.yaml", share)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(presets, "preset_dirs",
                        lambda orig=presets.preset_dirs: [tmp_path / "no-checkout"] + orig()[1:])
    assert presets.presets_dir() == share
    assert "emsa-ternary" in list_solvers() and "emsa-binary" not in list_solvers()
    assert make_solver("emsa-ternary").hp["rho"] == 0.25
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["data-files"]["share/ocdl/solvers"] == \
        ["solvers/*.yaml"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_value_names_its_source(name):
    path = presets_dir() / f"{name}.yaml"
    data = read_preset(path)
    assert data.get("description")
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([a-z_]+):", line)
        if m and m.group(1) not in ("solver", "description"):
            assert "#" in line, f"{path.name}: '{m.group(1)}' has no source comment"


def test_paper_settings():
    b, t = make_solver("emsa-binary").hp, make_solver("emsa-ternary").hp
    assert b["rho"] == 0.5 and t["rho"] == 0.25
    for hp in (b, t):
        assert hp["alpha"] == 0.999 and hp["alpha_decay"] == 0.95 and hp["mbar_init"] == 1e-6
        assert hp["lr"] == 1e-3
    bop = make_solver("bop").hp
    assert bop["threshold"] == 1e-8 and bop["gamma"] == 1e-4


def test_overrides_and_paths(tmp_path):
    assert make_solver("emsa-ternary", {"rho": 0.3, "alpha_decay": 0.98}).hp["rho"] == 0.3
    f = tmp_path / "mine.yaml"
    f.write_text("solver: emsa\nrho: 1e-1  # mine\nadaptive_rho: true\n")
    s = make_solver(str(f))
    assert s.hp["rho"] == 0.1 and s.hp["adaptive_rho"] is True
    assert make_solver(f, {"rho": 2}).hp["rho"] == 2.0
    info = solver_info("emsa-binary")
    assert info["solver"] == "emsa" and info["supports"] == ["binary", "real"]


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(SolverError) as e:
        make_solver("emsa-ternery")
    msg = str(e.value)
    assert "did you mean 'emsa-ternary'" in msg and "binaryconnect" in msg and "\n" not in msg
    with pytest.raises(SolverError, match="not found"):
        make_solver("no/such/file.yaml")


@pytest.mark.parametrize("overrides,match", [
    ({"rhoo": 0.5}, "no setting 'rhoo' \\(did you mean 'rho'\\?\\)"),
    ({"rho": "big"}, "must be a finite number"),
    ({"rho": -1.0}, "'rho' must be ≥ 0"),
    ({"alpha": 1.0}, "'alpha' must be in \\[0, 1\\)"),
    ({"inner": "newton"}, "must be one of gd, adam, lbfgs"),
    ({"adaptive_rho": 1}, "must be true or false"),
    ({"inner_steps": 0}, "'inner_steps' must be ≥ 1"),
    ({"inner_steps": 2.5}, "must be an integer"),
    ({"sets": ["binary", "quaternary"]}, "'sets' must be a list"),
    ({"betas": [0.9]}, "betas"),
])
def test_bad_settings(overrides, match):
    with pytest.raises(SolverError, match=match):
        make_solver("emsa", overrides)


def test_bad_preset_files(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("rho: 0.5\n")
    with pytest.raises(SolverError, match="solver: <name>"):
        make_solver(str(f))
    f.write_text("solver: emsb\n")
    with pytest.raises(SolverError, match="did you mean 'emsa'"):
        make_solver(str(f))
    f.write_text("solver: [\n")
    with pytest.raises(SolverError, match="YAML"):
        make_solver(str(f))
    with pytest.raises(SolverError, match="lr"):
        make_solver("sgd", {"lr": 0})
