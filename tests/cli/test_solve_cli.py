"""``ocdl solve``, ``ocdl compare`` and ``ocdl compare-runs``: summaries, run folders, one-line
errors, exit codes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocdl.cli import cli
from ocdl.models import model_path

RUN_TESTS = Path(__file__).parents[1] / "run"
sys.path.insert(0, str(RUN_TESTS))
import run_fakes as fakes  # noqa: E402

ROOT = Path(__file__).parents[2]


@pytest.fixture
def fake(monkeypatch):
    fakes.install(monkeypatch)
    return fakes


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(fakes.TINY_SPEC)
    return p


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments, code=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_solve_prints_summary_and_writes_run_folder(fake, model, tmp_path):
    out = tmp_path / "run"
    r = invoke("solve", model, "--solver", "fake", "--epochs", 2, "--out", out, "--quiet",
               "--set", "lr=0.01", "--set", "data.batch_size=25", "--set", "run.log_every=3",
               "--seed", 3)
    assert r.exit_code == 0, r.output
    for words in ("final test accuracy", "best test accuracy", "non-zero", "wall time",
                  str(out)):
        assert words in r.stdout
    assert r.stderr == ""  # --quiet
    for name in ("config.yaml", "log.jsonl", "last.pt", "best.pt", "controls.pt",
                 "summary.json"):
        assert (out / name).is_file(), name
    import yaml
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["solver"] == {"name": "fake", "hp": {"lr": 0.01, "gain": 200.0, "noise": 0.001,
                                                      "k": 0}}
    assert cfg["model"]["data"]["batch_size"] == 25
    assert cfg["run"]["seed"] == 3 and cfg["run"]["epochs"] == 2
    assert cfg["run"]["device_resolved"] == "cpu" or cfg["run"]["device_resolved"].startswith(
        "cuda")
    assert cfg["overrides"] == {"lr": 0.01, "data.batch_size": 25, "run.log_every": 3}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["status"] == "completed"
    lines = (out / "log.jsonl").read_text().splitlines()
    assert sum('"type": "iter"' in ln for ln in lines) == 2 * 8  # 200 samples / 25


def test_solve_shows_epoch_lines_unless_quiet(fake, model, tmp_path):
    r = invoke("solve", model, "--solver", "fake", "--epochs", 2, "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert "epoch   1/2" in r.stderr and "epoch   2/2" in r.stderr


def test_missing_model_file(fake, tmp_path):
    r = invoke("solve", tmp_path / "nope.yaml", "--solver", "fake")
    assert_one_line_error(r, "model file not found", "nope.yaml")


def test_bad_yaml(fake, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("ocdl: 1\nname: bad\nstages: [\n  - {op: dense\n")
    r = invoke("solve", p, "--solver", "fake")
    assert_one_line_error(r, "bad.yaml:", "YAML syntax error")


def test_invalid_spec_names_file_and_line(fake, tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(fakes.TINY_SPEC.replace("units: 16", "units: -4"))
    r = invoke("solve", p, "--solver", "fake")
    assert_one_line_error(r, "m.yaml:5:", "units")


def test_unknown_solver(fake, model):
    r = invoke("solve", model, "--solver", "fakee", "--out", model.parent / "r")
    assert_one_line_error(r, "unknown solver 'fakee'", "did you mean 'fake'")
    assert not (model.parent / "r").exists()  # nothing is created on a user error


@pytest.mark.parametrize("setting, fragment", [
    ("lrr=0.1", "has no setting 'lrr'"),
    ("data.batchsize=5", "unknown key 'batchsize'"),
    ("data.limit=-3", "positive integer"),
    ("run.epoch=3", "unknown run setting 'run.epoch'"),
    ("rho", "expected key=value"),
    ("model.units=3", "has no setting 'model.units'"),
])
def test_bad_set(fake, model, setting, fragment):
    r = invoke("solve", model, "--solver", "fake", "--set", setting)
    assert_one_line_error(r, fragment)


def test_solver_that_cannot_handle_the_control_set(fake, model):
    r = invoke("solve", model, "--solver", "fake-real")
    assert_one_line_error(r, "cannot optimise control fc1.weight", "ternary")


def test_no_model_and_no_resume(fake):
    r = invoke("solve")
    assert_one_line_error(r, "give a MODEL", "--recipe NAME", "--resume DIR", "--like RUN")


def test_like_starts_a_new_run_with_the_recorded_settings(fake, model, tmp_path):
    assert invoke("solve", model, "--solver", "fake", "--epochs", "1", "--set", "lr=0.02",
                  "--out", tmp_path / "A").exit_code == 0
    r = invoke("solve", "--like", tmp_path / "A", "--seed", "3", "--set", "gain=100",
               "--out", tmp_path / "B")
    assert r.exit_code == 0, r.output
    assert "solver fake, seed 3, 1 epoch(s)" in r.output
    text = (tmp_path / "B" / "config.yaml").read_text()
    assert "lr: 0.02" in text and "gain: 100" in text and f"like: {tmp_path / 'A'}" in text


@pytest.mark.parametrize("extra, fragment", [
    ((), "no such run folder or file"),
    (("--resume", "somewhere"), "exclude each other"),
])
def test_like_errors_are_one_line(fake, tmp_path, extra, fragment):
    r = invoke("solve", "--like", tmp_path / "nothing", *extra)
    assert_one_line_error(r, fragment)


def test_bad_device(fake, model):
    r = invoke("solve", model, "--solver", "fake", "--device", "tpu")
    assert_one_line_error(r, "unknown device 'tpu'")


def test_ctrl_c_exits_130_and_resume_finishes(fake, model, tmp_path):
    out = tmp_path / "r"
    r = invoke("solve", model, "--solver", "fake-sigint@5", "--epochs", 2, "--out", out,
               "--quiet")
    assert r.exit_code == 130, r.output
    assert "Traceback" not in r.output
    assert f"--resume {out}" in r.stderr and "checkpoint saved" in r.stderr
    r = invoke("solve", "--resume", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_divergence_exit_code(fake, model, tmp_path):
    r = invoke("solve", model, "--solver", "fake-nan@3", "--epochs", 1, "--out", tmp_path / "r")
    assert_one_line_error(r, "diverged: loss became nan at epoch 1, iteration 3", code=3)


def test_resume_with_other_settings_is_refused(fake, model, tmp_path):
    out = tmp_path / "r"
    assert invoke("solve", model, "--solver", "fake", "--epochs", 1, "--out", out,
                  "-q").exit_code == 0
    r = invoke("solve", "--resume", out, "--set", "lr=3")
    assert_one_line_error(r, "keeps its solver", f"--like {out}")
    r = invoke("solve", "--resume", out, "--out", tmp_path / "x")
    assert_one_line_error(r, "exclude each other")
    r = invoke("solve", "--resume", tmp_path / "missing")
    assert_one_line_error(r, "no such run folder")


def test_compare_prints_table_and_writes_plots(fake, model, tmp_path):
    out = tmp_path / "cmp"
    r = invoke("compare", model, "--solvers", "fake,fake-nan@100000", "--seeds", 2,
               "--epochs", 2, "--out", out, "--quiet", "--set", "run.log_every=5")
    assert r.exit_code == 0, r.output
    assert "| solver" in r.stdout and "fake-nan@100000" in r.stdout and " ± " in r.stdout
    for name in ("compare.md", "compare.csv", "loss_vs_epoch.png", "accuracy_vs_epoch.png",
                 "loss_vs_time.png", "accuracy_vs_time.png", "sparsity_vs_epoch.png"):
        assert (out / name).is_file(), name
    assert len(list(out.glob("*-seed*"))) == 4


def test_compare_runs_prints_the_table_of_finished_runs(fake, model, tmp_path):
    for name, epochs in (("a", 1), ("b", 2)):
        assert invoke("solve", model, "--solver", "fake", "--epochs", epochs, "--out",
                      tmp_path / name, "--quiet").exit_code == 0
    out = tmp_path / "cmp"
    r = invoke("compare-runs", tmp_path / "a", tmp_path / "b", "--labels", "one epoch,two",
               "--out", out)
    assert r.exit_code == 0, r.output
    assert "| one epoch" in r.stdout and "| two" in r.stdout and "| run " in r.stdout
    assert (out / "compare.md").is_file() and (out / "accuracy_vs_epoch.png").is_file()
    assert_one_line_error(invoke("compare-runs", tmp_path / "nowhere", "--out", out),
                          "not a run folder")
    r = invoke("compare-runs", tmp_path / "a", tmp_path / "b", "--label", "one, short",
               "--label", "two, long", "--out", tmp_path / "cmp2")
    assert r.exit_code == 0, r.output
    assert "| one, short" in r.stdout and "| two, long" in r.stdout
    r = invoke("compare-runs", tmp_path / "a", "--labels", "x", "--label", "y", "--out", out)
    assert r.exit_code == 2 and "not both" in r.output
    r = invoke("compare-runs", tmp_path / "a", "--reach", "0.01", "--reach", "200", "--out", out)
    assert_one_line_error(r, "accuracy to reach", "got '200'")
    r = invoke("compare-runs", tmp_path / "a", "--reach", "1 %", "--out", out)
    assert r.exit_code == 0 and "training time to 1 %" in r.stdout, r.output


def test_compare_reach_is_checked_before_any_run(fake, model, tmp_path):
    r = invoke("compare", model, "--solvers", "fake", "--reach", "ninety", "--out", tmp_path / "c")
    assert_one_line_error(r, "accuracy to reach")
    assert not (tmp_path / "c").exists()


def test_compare_with_an_unsuitable_solver(fake, model, tmp_path):
    r = invoke("compare", model, "--solvers", "fake,fake-real", "--out", tmp_path / "c")
    assert_one_line_error(r, "cannot optimise control fc1.weight")


def test_console_script_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from ocdl.cli import main; main()", "solve",
                           str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "model file not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- with the real solvers/data
def _real_available() -> bool:
    try:
        from ocdl.solvers import make_solver  # noqa: F401
        from ocdl.data import make_feeders  # noqa: F401
        from ocdl.data.load import embedded_path
        return embedded_path("mnist-subset").is_file()
    except Exception:  # noqa: BLE001
        return False


real = pytest.mark.skipif(not _real_available(),
                          reason="real solvers or embedded mnist-subset not available yet")


@real
def test_real_unknown_solver_lists_presets(model):
    r = invoke("solve", model, "--solver", "emsa-tenary")
    assert_one_line_error(r, "emsa-tenary")


@real
def test_real_short_run(tmp_path):
    out = tmp_path / "q"
    r = invoke("solve", model_path("quickstart"), "--solver", "emsa-ternary",
               "--epochs", 1, "--set", "data.limit=1000", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "final test accuracy" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert 0.0 < s["nonzero_fraction"] <= 1.0 and s["final_test_acc"] > 0.3


@real
def test_quickstart(tmp_path):
    """The README's main command (make run): accurate and sparse in about ten seconds."""
    out = tmp_path / "q"
    r = invoke("solve", model_path("quickstart"), "--solver", "emsa-ternary",
               "--epochs", 30, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "non-zero controls" in r.stdout and "final test accuracy" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["final_test_acc"] > 0.95 and s["nonzero_fraction"] < 0.15, s


@real
def test_real_only_solver_on_a_ternary_model_points_to_relax(tmp_path):
    r = invoke("solve", model_path("quickstart"), "--solver", "adam",
               "--out", tmp_path / "a", "--quiet")
    assert_one_line_error(r, "cannot optimise control fc1.weight", "--relax", code=2)
    assert not (tmp_path / "a").exists()


@real
def test_a_solver_setting_the_model_cannot_use_does_not_point_to_relax(tmp_path):
    """nonzero_target on a binary net: the fix is the model's sets or the setting, not --relax."""
    binary = tmp_path / "binary.yaml"
    binary.write_text((model_path("quickstart")).read_text()
                      .replace("control: ternary", "control: binary"))
    r = invoke("solve", binary, "--solver", "emsa", "--set", "nonzero_target=0.05",
               "--out", tmp_path / "a", "--quiet")
    assert_one_line_error(r, "nonzero_target needs a finite-set control", code=2)
    assert "--relax" not in r.stderr


@real
def test_relax_trains_the_real_weight_copy(tmp_path):
    import yaml
    out = tmp_path / "r"
    r = invoke("solve", model_path("quickstart"), "--solver", "adam", "--relax",
               "--epochs", 1, "--set", "data.limit=1000", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    controls = [s["control"] for s in cfg["model"]["stages"] if "control" in s]
    assert controls and all(c["set"] == "real" for c in controls), controls
    w = __import__("torch").load(out / "controls.pt")["theta"]["fc1.weight"]
    assert not set(w.unique().tolist()) <= {-1.0, 0.0, 1.0}  # real weights were trained
    r = invoke("solve", "--resume", out, "--relax", "--epochs", 2)
    assert_one_line_error(r, "relax is fixed when a run starts")


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("CUDA out of memory. Tried to "
                                                             "allocate 20.00 GiB\nmore")])
def test_out_of_memory_is_one_line_and_exit_2(model, monkeypatch, exc):
    import ocdl.api

    def boom(*a, **k):
        raise exc
    monkeypatch.setattr(ocdl.api, "solve", boom)
    r = invoke("solve", model)
    assert_one_line_error(r, "out of memory", "data.batch_size", code=2)


def test_other_runtime_errors_are_not_hidden(model, monkeypatch):
    import ocdl.api

    def boom(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(ocdl.api, "solve", boom)
    r = invoke("solve", model)
    assert isinstance(r.exception, RuntimeError)
