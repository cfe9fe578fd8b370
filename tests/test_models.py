"""The shipped models: package data found by name, wherever a MODEL is taken (``ocdl solve``,
``explain``, ``check``, ``compare``, :func:`ocdl.api.solve`), with ``ocdl models`` to list them."""
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import ocdl
from ocdl.cli import cli
from ocdl.errors import ConfigError
from ocdl.models import model_names, model_path, model_summary, resolve_model

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(r, *fragments):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr


def test_the_models_are_package_data_that_a_wheel_carries():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]
    assert package_data["ocdl.models"] == ["*.yaml"]
    assert package_data["ocdl.recipes"] == ["*.yaml"]
    assert {"quickstart", "mnist-fc-ternary", "cifar10-binary", "van-der-pol"} <= set(
        model_names())
    assert model_path("quickstart") == ROOT / "ocdl" / "models" / "quickstart.yaml"


def test_every_shipped_model_loads_and_says_in_one_line_what_it_is():
    for name in model_names():
        path = model_path(name)
        assert ocdl.load_spec(path).name == name  # the file's name is the model's
        summary = model_summary(path.read_text(encoding="utf-8"))
        assert summary and "\n" not in summary and len(summary) <= 100, (name, summary)


def test_a_name_resolves_to_the_shipped_file_and_an_existing_path_wins(tmp_path, monkeypatch):
    assert resolve_model("quickstart") == model_path("quickstart")
    assert resolve_model(model_path("lqr-2d")) == model_path("lqr-2d")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("ocdl: 1\nname: mine\ninput: [2]\n"
                                         "stages: [{op: dense, units: 1}]\ncost: mse\n")
    assert resolve_model("quickstart") == Path("quickstart")
    assert ocdl.load_spec(resolve_model("quickstart")).name == "mine"
    (tmp_path / "lqr-2d").mkdir()  # a folder is no model: the name still finds the shipped one
    assert resolve_model("lqr-2d") == model_path("lqr-2d")


@pytest.mark.parametrize("ref, fragments", [
    ("quickstrt", ["unknown model 'quickstrt'", "did you mean 'quickstart'?", "ocdl models",
                   "van-der-pol"]),
    ("models/quickstart.yaml", ["model file not found: models/quickstart.yaml",
                                "did you mean 'quickstart'?"]),
    ("zzz", ["unknown model 'zzz': neither a file nor a shipped model", "lqr-scalar"]),
])
def test_an_unknown_model_is_one_line_with_the_closest_name_and_the_list(ref, fragments):
    with pytest.raises(ConfigError) as e:
        resolve_model(ref)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value)
    one_line_error(invoke("solve", ref, "--quiet"), *fragments[:1])


def test_ocdl_models_lists_every_name_with_its_description():
    r = invoke("models")
    assert r.exit_code == 0, r.output
    rows = r.stdout.splitlines()
    assert [row.split()[0] for row in rows] == model_names()
    assert any(row.startswith("quickstart ") and "embedded MNIST subset" in row for row in rows)


def test_ocdl_models_show_prints_the_file_to_copy_and_edit(tmp_path):
    r = invoke("models", "show", "quickstart")
    assert r.exit_code == 0, r.output
    assert r.stdout == model_path("quickstart").read_text(encoding="utf-8")
    mine = tmp_path / "my.yaml"
    mine.write_text(r.stdout.replace("units: 256", "units: 32"))
    assert ocdl.load_spec(mine).stages[0].params["units"] == 32
    one_line_error(invoke("models", "show", "quikstart"), "did you mean 'quickstart'?")


def test_explain_and_compare_take_a_name(tmp_path):
    r = invoke("explain", "lqr-2d")
    assert r.exit_code == 0, r.output
    assert "lqr-2d" in r.stdout
    r = invoke("compare", "quickstart", "--solvers", "emsa-ternary", "--epochs", 1, "--set",
               "data.limit=200", "--out", tmp_path / "c", "--quiet")
    assert r.exit_code == 0, r.output


def test_check_takes_a_name():
    pytest.importorskip("casadi")
    r = invoke("check", "lqr-scalar", "--iters", 50)
    assert r.exit_code in (0, 1), r.output
    assert "objective gap" in r.output


def test_api_solve_takes_a_name(tmp_path):
    res = ocdl.api.solve("quickstart", epochs=1, overrides={"data.limit": 200},
                         out=tmp_path / "q")
    assert res.status == "completed"
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["model"] == "quickstart"
