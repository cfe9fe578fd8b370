"""Recipes (``ocdl solve --recipe NAME|FILE``): the shipped ones are valid, a recipe runs with the
settings of its long command line, the command line overrides it key by key, and a bad recipe is
one line that names the file and the line (exit code 2)."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import ocdl
from ocdl.cli import cli
from ocdl.errors import ConfigError
from ocdl.models import model_path
from ocdl.run.overrides import apply_data_overrides, split_overrides
from ocdl.run.recipes import load_recipe, recipe_names, resolve_recipe

RUN = ["--epochs", "1", "--set", "data.limit=200", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def one_line_error(r, *fragments):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_shipped_recipe_is_valid_and_names_what_it_measured():
    names = recipe_names()
    assert {"quickstart", "mnist-binary-20", "mnist-ternary-20", "mnist-ternary-sparse-20",
            "fashion-binary-20", "fashion-ternary-20", "cifar10-binary-gpu",
            "cifar10-ternary-gpu"} <= set(names)
    for n in names:
        r = load_recipe(n)  # keys, model, solver and every setting checked
        assert r.solver and r.epochs and r.description and len(r.description) <= 100
        assert r.model_path().is_file()
        assert "Measured" in r.path.read_text(encoding="utf-8"), n  # the comment says what
        model = ocdl.load_spec(r.model_path())
        apply_data_overrides(model, split_overrides(r.settings).data)  # the data keys fit
    gpu = load_recipe("cifar10-ternary-gpu")
    assert gpu.device == "cuda" and gpu.settings["run.time_limit"] == 536
    assert gpu.settings["data.split.train"] == 50000 and gpu.settings["nonzero_end"] == 0.8


def test_a_recipe_runs_with_the_config_of_its_long_command_line(tmp_path):
    """mnist-ternary-20's settings on the quickstart model (a MODEL replaces the recipe's)."""
    short, long = tmp_path / "short", tmp_path / "long"
    r = invoke("solve", "--recipe", "mnist-ternary-20", "quickstart", *RUN, "--out", short)
    assert r.exit_code == 0, r.output
    r = invoke("solve", model_path("quickstart"), "--solver", "emsa-ternary", *RUN,
               "--set", "data.augment={crop: 2}", "--set", "alpha_end=0.005",
               "--set", "lr_end=0.0155", "--set", "nonzero_target=0.0195", "--out", long)
    assert r.exit_code == 0, r.output
    a, b = config(short), config(long)
    assert a["solver"] == b["solver"] and a["solver"]["hp"]["nonzero_target"] == 0.0195
    assert a["overrides"] == b["overrides"] == {"data.augment": {"crop": 2}, "alpha_end": 0.005,
                                                "lr_end": 0.0155, "nonzero_target": 0.0195,
                                                "data.limit": 200}
    assert a["model"] == b["model"] and a["run"] == b["run"]
    assert a["recipe"] == "mnist-ternary-20" and "recipe" not in b


def test_the_command_line_overrides_the_recipe_key_by_key(tmp_path):
    recipe = write(tmp_path, "description: a test\nmodel: quickstart\nsolver: emsa-ternary\n"
                             "epochs: 30\nseed: 4\nset:\n  alpha_end: 0.5\n  data.limit: 5000\n"
                             "  run.eval_every: 2\n")
    out = tmp_path / "run"
    res = ocdl.api.solve(recipe=recipe, epochs=1, overrides={"alpha_end": 0.25,
                                                             "data.limit": 200}, out=out)
    assert res.status == "completed"
    c = config(out)
    assert c["run"]["epochs"] == 1 and c["run"]["seed"] == 4 and c["run"]["eval_every"] == 2
    assert c["solver"]["hp"]["alpha_end"] == 0.25
    assert c["overrides"] == {"alpha_end": 0.25, "data.limit": 200, "run.eval_every": 2}
    # another solver drops the recipe's solver settings, not its data and run ones
    args = load_recipe(recipe).arguments(solver="twn")
    assert args["solver"] == "twn" and args["overrides"] == {"data.limit": 5000,
                                                             "run.eval_every": 2}
    assert load_recipe(recipe).arguments(solver="emsa-ternary")["overrides"]["alpha_end"] == 0.5


def test_a_recipe_model_path_is_read_relative_to_the_recipe(tmp_path, monkeypatch):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mine.yaml").write_text(model_path("quickstart").read_text())
    recipe = write(tmp_path / "nets", "description: mine\nmodel: mine.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_recipe(recipe).model_path() == tmp_path / "nets" / "mine.yaml"
    assert resolve_recipe("nets/r.yaml") == Path("nets/r.yaml")


@pytest.mark.parametrize("text, line, fragments", [
    ("description: x\nmodel: quickstart\nepoch: 3\n", 3,
     ["unknown key 'epoch' (did you mean 'epochs'?)", "description, model"]),
    ("description: x\nmodel: quickstart\nepochs: 0\n", 3, ["'epochs' must be a whole number"]),
    ("model: quickstart\n", 1, ["'description:' is missing"]),
    ("description: x\nmodel: quickstrt\n", 2, ["did you mean 'quickstart'?"]),
    ("description: x\nmodel: quickstart\nsolver: emsa-tern\n", 3,
     ["unknown solver 'emsa-tern'"]),
    ("description: x\nmodel: quickstart\nsolver: emsa-ternary\nset:\n  alpha_ed: 0.1\n", 5,
     ["no setting 'alpha_ed' (did you mean 'alpha_end'?)"]),
    ("description: x\nmodel: quickstart\nsolver: emsa-ternary\nset:\n  rho: 0.1\n"
     "  nonzero_start: 0.5\n", 6, ["nonzero_start", "set nonzero_target too"]),
    ("description: x\nmodel: quickstart\nset:\n  run.eval_evry: 2\n", 4,
     ["unknown run setting 'run.eval_evry'", "did you mean 'eval_every'?"]),
    ("description: x\nmodel: quickstart\nset:\n  data.augmnt: {crop: 2}\n", 4,
     ["unknown key 'augmnt'", "did you mean 'augment'?"]),
    ("description: x\nmodel: quickstart\nset: [alpha_end, 1]\n", 3, ["'set' is a mapping"]),
    ("description: x\nmodel: [quickstart\n", 3, ["YAML syntax error"]),
    ("- a\n- b\n", 1, ["a recipe is a mapping"]),
])
def test_a_bad_recipe_is_one_line_naming_the_file_and_line(tmp_path, text, line, fragments):
    recipe = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_recipe(recipe)
    assert str(e.value).startswith(f"{recipe}:{line}: "), str(e.value)
    r = invoke("solve", "--recipe", recipe, "--out", tmp_path / "never", "--quiet")
    one_line_error(r, f"{recipe}:{line}: ", *fragments)
    assert not (tmp_path / "never").exists()


def test_an_unknown_recipe_and_a_recipe_with_resume_are_one_line(tmp_path):
    one_line_error(invoke("solve", "--recipe", "mnist-ternary"),
                   "unknown recipe 'mnist-ternary' (did you mean 'mnist-ternary-20'?)",
                   "ocdl recipes")
    one_line_error(invoke("solve", "--recipe", "quickstart", "--resume", tmp_path),
                   "excludes resume and like")


def test_ocdl_recipes_lists_and_shows_them():
    r = invoke("recipes")
    assert r.exit_code == 0, r.output
    rows = r.stdout.splitlines()
    assert rows[0].split()[:3] == ["name", "model", "solver"]
    assert [row.split()[0] for row in rows[1:]] == recipe_names()
    assert any(row.startswith("mnist-ternary-20 ") and "mnist-fc-ternary" in row
               for row in rows)
    r = invoke("recipes", "show", "mnist-ternary-20")
    assert r.exit_code == 0 and r.stdout == resolve_recipe("mnist-ternary-20").read_text()
    assert "nonzero_target: 0.0195" in r.stdout and "99.12 %" in r.stdout
