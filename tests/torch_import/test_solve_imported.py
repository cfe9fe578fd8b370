"""An imported model trains from its torch weights: ``ocdl solve net.yaml`` and
``ocdl.api.solve`` start from the spec's initial controls, and the run folder keeps a copy so
that ``--like`` starts from them too; ``ocdl import-torch`` writes the spec and the file."""
from __future__ import annotations

import dataclasses
import textwrap

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import ocdl
from ocdl.api import solve
from ocdl.cli import cli
from ocdl.run.checkpoint import read_saved

# SGD with a step too small to move a float32 control: the run ends where it started
STILL = {"lr": 1e-30, "momentum": 0.0, "data.limit": 100, "data.batch_size": 50}
MODULE = textwrap.dedent("""\
    import torch
    import torch.nn as nn

    def make():
        torch.manual_seed(4)
        return nn.Sequential(nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(),
                             nn.Linear(16, 10))

    def broken():
        return nn.Sequential(nn.Linear(784, 16), nn.GELU(), nn.Linear(16, 10))
    """)


def _net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def _assert_started_from(run_dir, initial):
    theta = read_saved(run_dir / "controls.pt")["theta"]
    assert set(theta) == {k for k in initial if not k.endswith(("running_mean",
                                                                 "running_var"))}
    for k, v in theta.items():
        assert torch.allclose(v, initial[k].float(), rtol=0, atol=1e-20), k


def test_solve_starts_from_the_initial_controls(tmp_path):
    imported = ocdl.from_torch(_net(), input_shape=(784,), data="mnist-subset")
    path = imported.save(tmp_path / "net.yaml")
    result = solve(str(path), solver="sgd", overrides=STILL, epochs=1, out=tmp_path / "run")
    run = result.run_dir
    _assert_started_from(run, imported.initial)
    # and not from the seeded start: the same spec without the key differs
    seeded = ocdl.compile(dataclasses.replace(imported.spec, initial_controls=None))
    assert not torch.allclose(seeded.theta["dense0.weight"], imported.initial["dense0.weight"])
    # the run folder keeps a copy, which its record names
    assert (run / "initial_controls.pt").is_file()
    assert "initial_controls: initial_controls.pt" in (run / "config.yaml").read_text()
    (tmp_path / "net.controls.pt").unlink()  # the original may go
    again = solve(like=run, out=tmp_path / "again", epochs=1)
    _assert_started_from(again.run_dir, imported.initial)
    more = solve(resume=run, epochs=2)  # rebuilt from the record, then the checkpoint
    assert len(more.history) == 2


def test_an_in_memory_spec_is_solved_from_its_controls(tmp_path):
    imported = ocdl.from_torch(_net(), input_shape=(784,), data="mnist-subset")
    result = solve(imported.spec, solver="sgd", overrides=STILL, epochs=1,
                   out=tmp_path / "run")
    _assert_started_from(result.run_dir, imported.initial)
    assert (result.run_dir / "initial_controls.pt").is_file()


def test_cli_import_torch(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "spec" / "net.yaml"
    r = CliRunner().invoke(cli, ["import-torch", "mynets:make", "--input-shape", "784",
                                 "--controls", "Linear=ternary,3=binary", "--data",
                                 "mnist-subset", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and (tmp_path / "spec" / "net.controls.pt").is_file()
    spec = ocdl.load_spec(out)
    sets = {s.name: s.control for s in spec.stages}
    assert sets == {"dense0": ocdl.Ternary(), "batchnorm1": None, "relu2": None,
                    "dense3": ocdl.Binary()}
    system = ocdl.compile(str(out))
    ref = ocdl.from_torch(_net(), input_shape=(784,), controls={"Linear": "ternary",
                                                                 "3": "binary"})
    for k, v in ref.initial.items():
        if k in system.theta:
            assert torch.equal(system.theta[k].detach(), v), k
    # a file path works as well as a module name
    r = CliRunner().invoke(cli, ["import-torch", "mynets.py:make", "--input-shape", "784",
                                 "--out", str(tmp_path / "b.yaml")])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args, fragment", [
    (["mynets:broken", "--input-shape", "784"], "1 (GELU)"),
    (["mynets:nothing", "--input-shape", "784"], "has no attribute 'nothing'"),
    (["mynets", "--input-shape", "784"], "is not MODULE:FUNCTION"),
    (["mynets:make", "--input-shape", "7x"], "--input-shape"),
    (["mynets:make", "--input-shape", "784", "--controls", "Linear"], "is not NAME=SET"),
    (["mynets:make", "--input-shape", "784", "--controls", "Lnear=ternary"],
     "did you mean 'Linear'"),
])
def test_cli_errors_are_one_line(tmp_path, monkeypatch, args, fragment):
    (tmp_path / "mynets.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    r = CliRunner().invoke(cli, ["import-torch", *args, "--out", str(tmp_path / "n.yaml")])
    assert r.exit_code == 2, r.output
    assert fragment in r.output and r.output.startswith("error: "), r.output
    assert len(r.output.strip().splitlines()) == 1
