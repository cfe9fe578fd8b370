"""Presets, the registry and hyperparameter checking."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import ocdl

from ocdl.errors import SolverError
from ocdl.solvers import SOLVERS, Solver, list_solvers, make_solver, solver_info
from ocdl.solvers.presets import preset_names, presets_dir, read_preset

PRESETS = ["msa", "emsa", "emsa-binary", "emsa-ternary", "emsa-ocp", "emsa-ocp-discrete", "sgd",
           "adam", "binaryconnect", "twn", "bop", "latent-nearest"]


def test_presets_exist_and_build():
    assert sorted(PRESETS) == preset_names()
    names = list_solvers()
    for p in PRESETS:
        assert p in names
        s = make_solver(p)
        assert isinstance(s, Solver) and s.name in SOLVERS
    assert "adamw" in names and "latent" in names  # classes without a preset


def test_presets_are_package_data():
    """The presets live inside the package (found with importlib.resources), so a wheel carries
    them: pyproject lists them as package data, and no folder outside the package is read."""
    import tomllib

    d = Path(str(presets_dir()))
    assert d == Path(ocdl.__file__).parent / "solvers" / "presets" and d.is_dir()
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert "*.yaml" in setuptools["package-data"]["ocdl.solvers.presets"]
    assert "share/ocdl/solvers" not in setuptools.get("data-files", {})


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_value_names_its_source_and_flat_name(name):
    """Every setting line has a source comment; a line inside a block names its flat alias in
    brackets, and that alias is the solver's name for the block's setting."""
    path = presets_dir() / f"{name}.yaml"
    data = read_preset(path)
    assert data.get("description")
    layout = SOLVERS[data["solver"]].layout
    block = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^( *)([a-z_]+):", line)
        if not m or m.group(2) in ("solver", "description"):
            continue
        assert "#" in line, f"{name}.yaml: '{m.group(2)}' has no source comment"
        if not m.group(1):
            block = m.group(2) if m.group(2) in layout.blocks else None
            key = m.group(2)
        else:
            key = f"{block}.{m.group(2)}"
        flat = re.search(r"# \[([a-z_]+)\]", line)
        if key in layout.flat:
            assert flat and flat.group(1) == layout.flat[key], f"{name}.yaml: {key}"


def test_nested_blocks_dotted_paths_and_flat_names_are_one_setting():
    """A preset's blocks, --set's dotted paths and the flat names of run records all reach the
    same setting; hp stays flat, settings nested."""
    a = make_solver("emsa-ternary", {"nonzero_target": 0.02, "nonzero_start": 0.5})
    b = make_solver("emsa-ternary", {"sparsity.target": 0.02, "sparsity.start": 0.5})
    c = make_solver("emsa-ternary", {"sparsity": {"target": 0.02, "start": 0.5}})
    assert a.hp == b.hp == c.hp and a.hp["nonzero_target"] == 0.02
    assert a.settings["sparsity"]["target"] == 0.02 and a.settings["error_control"]["rho"] == 0.25
    assert a.layout.nest(a.hp)["sparsity"] == {"target": 0.02, "rate": 0.01, "start": 0.5,
                                               "end": None, "floor": None}
    # the run layer merges --set over a record's flat hp: the later name wins
    assert make_solver("emsa", {"nonzero_target": 0.02, "sparsity.target": 0.03}
                       ).hp["nonzero_target"] == 0.03
    with pytest.raises(SolverError, match=r"no setting 'sparsity.targt' \(did you mean "
                                          r"'sparsity.target'\?\)"):
        make_solver("emsa", {"sparsity.targt": 0.02})
    with pytest.raises(SolverError, match="no setting 'sparsity.rho'"):
        make_solver("emsa", {"sparsity": {"rho": 0.5}})
    with pytest.raises(SolverError, match="setting 'nonzero_target' must be a fraction"):
        make_solver("emsa", {"sparsity.target": 2.0})


def test_a_preset_giving_one_setting_twice_is_refused(tmp_path):
    f = tmp_path / "twice.yaml"
    f.write_text("solver: emsa\nnonzero_target: 0.02\nsparsity: {target: 0.03}  # twice\n")
    with pytest.raises(SolverError, match="twice.yaml: solver 'emsa' setting 'nonzero_target' "
                                          "is given twice"):
        make_solver(f)


def test_every_solver_is_a_composition_of_parts():
    """Each registered solver's settings are blocks of parts: every flat name aliases a part's
    setting (or a top-level one), and its default is the part's unless the solver says so."""
    for name, cls in SOLVERS.items():
        assert cls.parts, name
        for flat, path in cls.aliases.items():
            block, _, key = path.partition(".")
            assert (key in cls.parts[block].DEFAULTS) if key else (block in cls.top), (name, flat)
        assert set(cls.defaults) == set(cls.aliases), name


def test_emsa_flat_names_and_blocks():
    """E-MSA: 32 flat names (the records' hp) in 8 blocks and 2 top-level settings."""
    s = make_solver("emsa")
    assert len(s.hp) == 32
    assert sorted(s.layout.blocks) == ["argmax", "average", "error_control", "execution",
                                       "inner_maximisation", "lr_schedule", "real", "sparsity"]
    assert sorted(k for k, v in s.layout.path.items() if "." not in v) == ["seed", "sets"]


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
