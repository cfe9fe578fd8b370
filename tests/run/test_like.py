"""A new run ``like`` a recorded one (``ocdl solve --like RUN``): the recorded run's model,
solver, hyperparameters, settings and loop options, each replaced by what is given."""
from pathlib import Path

import pytest
import torch
import yaml

from ocdl.api import solve
from ocdl.errors import OcdlError
from ocdl.errors import ConfigError
from ocdl.models import model_path

from run_helpers import assert_same_state, load, log_records

ROOT = Path(__file__).parents[2]
QUICK = model_path("quickstart")
# the recorded run: settings of all three kinds (solver, data, loop)
RECORDED = {"rho": 0.3, "data.limit": 400, "data.batch_size": 50, "run.eval_every": 2,
            "run.device": "cpu"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("like") / "A"
    solve(QUICK, "emsa-ternary", epochs=2, out=out, overrides=RECORDED)
    return out


def config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_like_without_changes_reproduces_the_recorded_run(recorded, tmp_path):
    res = solve(like=recorded, out=tmp_path / "B")
    assert res.epochs == 2 and res.solver == "emsa-ternary" and res.seed == 0
    assert_same_state(load(recorded / "controls.pt"), load(tmp_path / "B" / "controls.pt"))
    assert log_records(recorded) == log_records(tmp_path / "B")
    a, b = config(recorded), config(tmp_path / "B")
    assert b.pop("like") == str(recorded / "config.yaml")
    assert a == b  # the same model, solver settings, overrides and loop options


def test_like_with_a_config_yaml_and_new_settings_replaces_key_by_key(recorded, tmp_path):
    res = solve(like=recorded / "config.yaml", out=tmp_path / "B", seed=1, epochs=1,
                overrides={"rho": 0.5, "data.batch_size": 100})
    c = config(tmp_path / "B")
    assert res.seed == 1 and res.epochs == 1
    assert c["solver"]["hp"]["rho"] == 0.5
    assert c["solver"]["hp"]["seed"] == 1  # the solver's draws follow the new run seed
    assert c["overrides"] == {**RECORDED, "rho": 0.5, "data.batch_size": 100}
    assert c["model"]["data"]["limit"] == 400
    assert c["model"]["data"].get("batch_size", 100) == 100  # the default is not written
    assert c["run"]["eval_every"] == 2 and c["run"]["seed"] == 1
    # the same training samples (the recorded data.limit) in batches of 100 instead of 50
    iters = [[r["iters"] for r in log_records(run) if r["type"] == "epoch"][0]
             for run in (recorded, tmp_path / "B")]
    assert iters[0] == 2 * iters[1] > 0


def test_like_keeps_an_explicit_solver_seed(tmp_path):
    solve(QUICK, "emsa-ternary", epochs=1, out=tmp_path / "A",
          overrides={**RECORDED, "seed": 7})
    solve(like=tmp_path / "A", seed=2, out=tmp_path / "B")
    c = config(tmp_path / "B")
    assert c["solver"]["hp"]["seed"] == 7 and c["run"]["seed"] == 2


def test_like_with_another_solver_keeps_the_data_and_loop_settings(recorded, tmp_path):
    solve(like=recorded, solver="twn", out=tmp_path / "B", epochs=1)
    c = config(tmp_path / "B")
    assert c["solver"]["name"] == "twn" and "rho" not in c["solver"]["hp"]
    assert c["overrides"] == {k: v for k, v in RECORDED.items() if k != "rho"}
    assert c["model"]["data"]["limit"] == 400 and c["run"]["eval_every"] == 2


def test_like_with_a_model_applies_the_recorded_data_settings_to_it(recorded, tmp_path):
    spec = tmp_path / "wide.yaml"
    spec.write_text(QUICK.read_text().replace("name: quickstart", "name: wide")
                    .replace("units: 256", "units: 64"))
    solve(spec, like=recorded, out=tmp_path / "B", epochs=1)
    c = config(tmp_path / "B")
    assert c["model"]["name"] == "wide" and c["model_file"] == str(spec)
    assert c["model"]["stages"][0]["units"] == 64
    assert c["model"]["data"]["limit"] == 400 and c["model"]["data"]["batch_size"] == 50
    assert c["solver"]["hp"]["rho"] == 0.3


def test_like_uses_the_recorded_hyperparameters_not_the_presets_current_ones(recorded,
                                                                           tmp_path):
    """A recorded run whose preset has since changed (here: its recorded α edited, as a newer
    preset's default would differ) is rerun with the recorded value."""
    c = config(recorded)
    c["solver"]["hp"]["alpha"] = 0.99
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(c))
    solve(like=tmp_path / "config.yaml", out=tmp_path / "B", epochs=1)
    assert config(tmp_path / "B")["solver"]["hp"]["alpha"] == 0.99
    # --solver, even the same preset: its current defaults, with the recorded --set settings
    solve(like=tmp_path / "config.yaml", solver="emsa-ternary", out=tmp_path / "C", epochs=1)
    hp = config(tmp_path / "C")["solver"]["hp"]
    assert hp["alpha"] == 0.999 and hp["rho"] == 0.3


@pytest.mark.parametrize("make, fragments", [
    (lambda d: d / "missing", ["no such run folder or file"]),
    (lambda d: d.mkdir() or d, ["no config.yaml in that folder"]),
    (lambda d: (d.with_suffix(".yaml").write_text("model: [1, 2\n"), d.with_suffix(".yaml"))[1],
     ["YAML syntax error", "like.yaml:2:"]),
    (lambda d: (d.with_suffix(".yaml").write_text("name: tiny\n"), d.with_suffix(".yaml"))[1],
     ["is not an ocdl run config", "model, solver, run"]),
])
def test_like_of_something_else_says_what_to_give(make, fragments, tmp_path):
    with pytest.raises(ConfigError) as ei:
        solve(like=make(tmp_path / "like"), out=tmp_path / "B")
    for f in fragments:
        assert f in str(ei.value), str(ei.value)
    assert not (tmp_path / "B").exists()


def test_like_with_recorded_settings_this_ocdl_does_not_know(recorded, tmp_path):
    c = config(recorded)
    c["solver"]["hp"]["retired_setting"] = 1
    (tmp_path / "hp.yaml").write_text(yaml.safe_dump(c))
    with pytest.raises(ConfigError, match=r"recorded in .*hp\.yaml do not fit.*--solver emsa-"):
        solve(like=tmp_path / "hp.yaml", out=tmp_path / "B")
    solve(like=tmp_path / "hp.yaml", solver="emsa-ternary", out=tmp_path / "C", epochs=1)
    c = config(recorded)
    c["overrides"]["run.retired"] = 1
    (tmp_path / "ov.yaml").write_text(yaml.safe_dump(c))
    with pytest.raises(ConfigError, match=r"overrides recorded in .*ov\.yaml.*run\.retired"):
        solve(like=tmp_path / "ov.yaml", out=tmp_path / "B")
    assert not (tmp_path / "B").exists()


def test_like_and_resume_exclude_each_other(recorded, tmp_path):
    with pytest.raises(OcdlError, match="exclude each other"):
        solve(resume=recorded, like=recorded)


FIXTURES = ROOT / "tests" / "fixtures"
# config.yaml of run folders written by earlier versions of ocdl (tests/fixtures/README.md)
OLD_CONFIGS = sorted((FIXTURES / "configs").glob("*.yaml"))


@pytest.mark.filterwarnings("ignore::ocdl.errors.SpecDeprecationWarning")
@pytest.mark.parametrize("config_file", OLD_CONFIGS, ids=[p.stem for p in OLD_CONFIGS])
def test_run_folders_of_earlier_versions_can_be_rerun_like(config_file):
    """``ocdl solve --like RUN`` on a run written by an earlier ocdl (fewer solver settings, a
    GPU run, one made --like another): its model, preset and hyperparameters still load."""
    from ocdl.run.rerun import load_like
    from ocdl.solvers import make_solver
    lk = load_like(config_file, make_solver)
    c = yaml.safe_load(config_file.read_text())
    for cost in c["model"].get("cost", {}).get("running", []):
        if "on" in cost:  # the older name of apply_to
            cost["apply_to"] = cost.pop("on")
    assert lk.model.to_dict() == c["model"] and lk.solver == c["solver"]["name"]
    assert lk.run_base.epochs == c["run"]["epochs"] and lk.overrides == c["overrides"]
    assert lk.run_base.device == c["run"]["device"]


def test_a_stored_run_reruns_like_it_bit_for_bit_on_the_cpu(tmp_path):
    """tests/fixtures/runs/quick-like, a two-epoch run stored with its folder, run again
    ``--like`` it on the CPU: every epoch's loss, accuracies and non-zero fractions as stored.
    Unlike the recorded run of the tests above, this one was made by an earlier ocdl process, so
    a change that alters what a recorded run computes fails here (rebuild the fixture with
    ``python tests/fixtures/make_fixtures.py --only quick`` when the change is meant)."""
    stored = FIXTURES / "runs" / "quick-like"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was made: the order of the sums depends on it
    try:
        res = solve(like=stored, out=tmp_path / "B")
    finally:
        torch.set_num_threads(threads)
    assert res.device == "cpu" and res.epochs == 2
    keys = ("epoch", "iters", "loss", "J", "nonzero", "lambda_scale", "dead", "valid_loss",
            "valid_acc", "test_loss", "test_acc")

    def epochs(run):
        return [{k: r.get(k) for k in keys} for r in log_records(run) if r["type"] == "epoch"]
    want, got = epochs(stored), epochs(tmp_path / "B")
    assert len(want) == 2 and all(w["test_acc"] is not None for w in want)
    assert got == want, "the stored run's epochs are not repeated bit for bit on this machine"
