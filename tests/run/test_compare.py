"""compare: one run per (solver, seed), a table with mean ± std, PNG plots."""
import json

import pytest

from ocdl.api import compare
from ocdl.errors import OcdlError
from tests.conftest import ROOT


def test_compare_rejects_unsuitable_solver_before_running(fake, tiny_model, tmp_path):
    with pytest.raises(OcdlError, match="cannot optimise control fc1.weight"):
        compare(tiny_model, "fake,fake-real", epochs=1, out=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_compare_runs_table_and_plots(fake, tiny_model, tmp_path):
    res = compare(tiny_model, ["fake", "fake-nan@1000"], seeds=2, epochs=2,
                  out=tmp_path / "c", overrides={"gain": 150.0, "run.log_every": 5})
    assert set(res.runs) == {"fake", "fake-nan@1000"}
    assert [r.seed for r in res.runs["fake"]] == [0, 1]
    r0, r1 = res.runs["fake"]
    assert r0.run_dir != r1.run_dir and r0.history != r1.history  # seeds differ
    assert all(r.config["solver"]["hp"]["gain"] == 150.0 for r in (r0, r1))
    row = res.table[0]
    assert row["solver"] == "fake" and row["seeds"] == 2
    mean, std = row["final_test_acc"]
    assert mean == pytest.approx((r0.final_test_acc + r1.final_test_acc) / 2)
    text = res.format_table()
    assert "final test acc" in text and " ± " in text and "training time" in text
    assert row["train_time"][0] == pytest.approx((r0.train_time + r1.train_time) / 2)
    for name in ("compare.md", "compare.csv", "compare.json", "loss_vs_epoch.png",
                 "accuracy_vs_epoch.png", "loss_vs_time.png", "accuracy_vs_time.png",
                 "sparsity_vs_epoch.png"):
        p = tmp_path / "c" / name
        assert p.is_file() and p.stat().st_size > 0, name
    assert (tmp_path / "c" / "loss_vs_epoch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert len(data["runs"]["fake"]) == 2
    assert len((tmp_path / "c" / "compare.csv").read_text().splitlines()) == 5
    for rs in res.runs.values():
        for r in rs:
            assert (r.run_dir / "summary.json").is_file()


def test_compare_unknown_setting(fake, tiny_model, tmp_path):
    with pytest.raises(OcdlError, match="no compared solver has the setting 'gian'"):
        compare(tiny_model, "fake", epochs=1, out=tmp_path / "c", overrides={"gian": 1.0})


def test_compare_goes_on_after_a_diverged_run(fake, tiny_model, tmp_path):
    res = compare(tiny_model, "fake,fake-nan@3", epochs=2, out=tmp_path / "c")
    assert [r.status for r in res.runs["fake"]] == ["completed"]
    bad = res.runs["fake-nan@3"][0]
    assert bad.status == "diverged" and bad.final_test_acc is None
    assert "diverged" in res.table[1]["status"]
    assert (tmp_path / "c" / "accuracy_vs_epoch.png").is_file()


def test_compare_runs_gathers_finished_runs(fake, tiny_model, tmp_path):
    """Runs made separately (here: different epochs and seeds) read back into the table of
    compare: the numbers are those each run returned; a shared label averages its runs."""
    from ocdl.api import compare_runs, solve
    a = solve(tiny_model, "fake", epochs=2, out=tmp_path / "a", overrides={"run.log_every": 5})
    b = solve(tiny_model, "fake", epochs=3, seed=1, out=tmp_path / "b")
    c = solve(tiny_model, "fake", epochs=3, seed=2, out=tmp_path / "c")
    res = compare_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"],
                       labels=["short", "long", "long"], out=tmp_path / "cmp")
    assert list(res.runs) == ["short", "long"] and res.model == "tiny"
    (ra,), (rb, rc) = res.runs["short"], res.runs["long"]
    for got, want in ((ra, a), (rb, b), (rc, c)):
        assert got.summary() | {"run_dir": ""} == want.summary() | {"run_dir": ""}
        assert [h["test_acc"] for h in got.history] == [h["test_acc"] for h in want.history]
    row = res.table[1]
    assert row["seeds"] == 2
    assert row["final_test_acc"][0] == pytest.approx((b.final_test_acc + c.final_test_acc) / 2)
    for name in ("compare.md", "compare.csv", "compare.json", "accuracy_vs_epoch.png",
                 "accuracy_vs_time.png", "sparsity_vs_epoch.png"):
        assert (tmp_path / "cmp" / name).is_file(), name
    # default labels: the folder names
    assert list(compare_runs([tmp_path / "a", tmp_path / "b"], out=tmp_path / "d").runs) == \
        ["a", "b"]


def test_compare_runs_reads_a_run_without_summary_as_unfinished(fake, tiny_model, tmp_path):
    from ocdl.api import compare_runs, solve
    done = solve(tiny_model, "fake", epochs=2, out=tmp_path / "r")
    (tmp_path / "r" / "summary.json").unlink()  # e.g. a run killed before it could write one
    (r,) = compare_runs([tmp_path / "r"], out=tmp_path / "cmp").runs["r"]
    assert r.status == "unfinished" and r.model == "tiny" and r.solver == "fake"
    assert r.device == done.device == "cpu"  # from config.yaml
    assert r.final_test_acc == done.final_test_acc and r.epochs == 2
    assert r.best_test_acc == done.best_test_acc
    assert r.test_acc_at_best_valid == done.test_acc_at_best_valid


def test_compare_runs_errors(fake, tiny_model, tmp_path):
    from ocdl.api import compare_runs, solve
    with pytest.raises(OcdlError, match="not a run folder \\(no log.jsonl there\\)"):
        compare_runs([tmp_path], out=tmp_path / "cmp")
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r")
    with pytest.raises(OcdlError, match="2 label\\(s\\) for 1 run folder"):
        compare_runs([tmp_path / "r"], labels=["x", "y"], out=tmp_path / "cmp")
    (tmp_path / "r" / "summary.json").write_text("{not json")
    with pytest.raises(OcdlError, match="summary.json: unreadable"):
        compare_runs([tmp_path / "r"], out=tmp_path / "cmp")
    with pytest.raises(OcdlError, match="no run folders given"):
        compare_runs([], out=tmp_path / "cmp")


# Run folders in tests/fixtures/runs, trimmed from old run records (tests/fixtures/README.md):
# written by earlier versions of ocdl, on a GPU and on a CPU, and read back here by this one.
FIXTURES = ROOT / "tests" / "fixtures" / "runs"
FIXTURE_ROWS = {  # folder: (epochs, final %, best %, at best valid %, non-zero %, device, status)
    "gpu-binary": (88, 89.88, 90.04, 89.83, 100.0, "cuda", "completed"),
    "gpu-fixed": (179, 87.98, 88.51, 87.98, 1.25, "cuda", "completed"),
    # no valid split (data.split.valid=0): the best epoch is chosen by test accuracy
    "gpu-held": (175, 89.10, 89.27, 89.27, 1.95, "cuda", "completed"),
    "cpu-nz-seed0": (20, 99.12, 99.15, 99.14, 1.95, "cpu", "completed"),
    "cpu-nz-seed1": (20, 99.14, 99.24, 99.04, 1.95, "cpu", "completed"),
    "cpu-nz-seed2": (20, 99.20, 99.23, 99.23, 1.95, "cpu", "completed"),
    "cpu-dead": (20, 90.21, 90.35, 90.35, 1.95, "cpu", "completed"),
    "cpu-keep": (20, 90.45, 90.45, 90.19, 1.95, "cpu", "completed"),
    # stopped with Ctrl-C in epoch 46: its log ends with the interrupted event
    "cpu-stopped": (45, 13.86, 44.39, 44.39, 4.70, "cpu", "interrupted"),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_ROWS))
def test_old_run_folders_read_back_as_they_ended(name):
    """load_run on run folders that other machines and older versions of ocdl wrote: the
    accuracies recomputed from the log (best by valid accuracy, else by test accuracy), the
    rest from summary.json."""
    from ocdl.run.folder import load_run
    epochs, final, best, at_valid, nonzero, device, status = FIXTURE_ROWS[name]
    r = load_run(FIXTURES / name)
    got = (r.epochs, r.final_test_acc * 100, r.best_test_acc * 100,
           r.test_acc_at_best_valid * 100, r.nonzero_fraction * 100)
    assert got == pytest.approx((epochs, final, best, at_valid, nonzero), abs=0.006)
    assert (r.device, r.status) == (device, status)
    assert r.history[-1].get("test_acc") is not None


def test_old_run_folders_with_dead_unit_counts_read_back_and_compare(tmp_path):
    """A CPU run that counted dead units (51 of 6154 at the end) and its keep_units twin (none):
    the count comes back from the log, and compare-runs gives it a column and a plot."""
    from ocdl.api import compare_runs
    from ocdl.run.folder import load_run
    plain, keep = load_run(FIXTURES / "cpu-dead"), load_run(FIXTURES / "cpu-keep")
    assert round(plain.dead_units * 6154) == 51 and keep.dead_units == 0.0
    assert plain.history[0]["dead"] == 0.0 < plain.history[1]["dead"]
    res = compare_runs([FIXTURES / "cpu-dead", FIXTURES / "cpu-keep"],
                       labels=["paper's rule", "keep_units"], out=tmp_path / "c")
    table = res.format_table()
    assert "dead units" in table and "0.83 %" in table
    assert (tmp_path / "c" / "dead_units_vs_epoch.png").is_file()


def test_dead_units_column_and_line_only_for_runs_that_counted_them(tmp_path):
    """The dead-unit fraction of the last epoch: a table column when some run has it ("-" for
    the others), none when no run has it; a line of ``describe``; a summary and CSV field."""
    from ocdl.run.results import result_from_history
    from ocdl.run.tables import compare_table, format_compare_table

    def run(name, **extra):
        h = [{"epoch": 1, "test_acc": 0.5, "nonzero": 0.1, "train_time": 1.0, **extra}]
        return result_from_history(h, run_dir=tmp_path / name, model="m", solver="s", seed=0,
                                   device="cpu", best={}, wall_time=1.0, nonzero=0.1,
                                   status="completed")
    old, new = run("old"), run("new", dead=0.0036)
    assert old.dead_units is None and new.dead_units == 0.0036
    assert new.summary()["dead_units"] == 0.0036
    assert "dead units           0.36 %" in new.describe()
    assert "dead units" not in old.describe()
    both = format_compare_table(compare_table({"old": [old], "new": [new]}), "run")
    header, _, row_old, row_new = both.splitlines()
    assert "| dead units |" in header
    assert "| -          |" in row_old and "| 0.36 %     |" in row_new
    assert "dead units" not in format_compare_table(compare_table({"old": [old]}), "run")


def test_time_to_reach_is_the_first_evaluated_epoch_at_or_above():
    from ocdl.run.tables import time_to_reach
    h = [{"epoch": 1, "test_acc": 0.5, "train_time": 10.0},
         {"epoch": 2, "train_time": 20.0},  # not evaluated (run.eval_every)
         {"epoch": 3, "test_acc": 0.9, "train_time": 30.0},
         {"epoch": 4, "test_acc": 0.95, "time": 41.0}]  # an old log: wall time only
    assert time_to_reach(h, 0.9) == {"epoch": 3, "train_time": 30.0}
    assert time_to_reach(h, 0.91) == {"epoch": 4, "train_time": 41.0}
    assert time_to_reach(h, 0.5) == {"epoch": 1, "train_time": 10.0}
    assert time_to_reach(h, 0.96) is None and time_to_reach([], 0.1) is None


@pytest.mark.parametrize("given, level", [(0.89, 0.89), (89, 0.89), ("89 %", 0.89),
                                          ("0.995", 0.995), (100, 1.0), (1, 1.0),
                                          ("1%", 0.01), ("0.5 %", 0.005)])
def test_accuracy_level_takes_fractions_and_percentages(given, level):
    from ocdl.run.tables import accuracy_level
    assert accuracy_level(given) == pytest.approx(level)


@pytest.mark.parametrize("given", [0, -5, 101, "abc", "", "nan"])
def test_accuracy_level_refuses_what_is_not_an_accuracy(given):
    from ocdl.errors import ConfigError
    from ocdl.run.tables import accuracy_level
    with pytest.raises(ConfigError, match="e.g. 0.89 or 89"):
        accuracy_level(given)


def test_compare_runs_reach_gives_the_times_to_accuracy(tmp_path):
    """The held-target run (evaluated every third epoch) first reached 89 % at epoch 132, 403 s
    of training; the fixed-λ run never did; the binary run got to 90 % at its epoch 84. Of the
    three seeds of a recipe, two reached 99.2 %."""
    from ocdl.api import compare_runs
    runs = FIXTURES
    r = compare_runs([runs / "gpu-held", runs / "gpu-fixed", runs / "gpu-binary"],
                     labels=["held", "fixed", "binary"], reach=[89, 0.9], out=tmp_path / "c",
                     plots=False)
    held, fixed, binary = r.table
    assert held["reach 89 %"]["reached"] == 1
    assert held["reach 89 %"]["epoch"][0] == 132
    assert held["reach 89 %"]["train_time"][0] == pytest.approx(403, abs=0.5)
    assert fixed["reach 89 %"]["reached"] == 0 and held["reach 90 %"]["reached"] == 0
    assert binary["reach 90 %"]["epoch"][0] == 84
    table = r.format_table()
    assert "training time to 89 %" in table and "403.2 s (epoch 132)" in table
    assert "not reached" in table
    saved = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert saved["table"][0]["reach 89 %"]["reached"] == 1
    seeds = compare_runs([runs / f"cpu-nz-seed{i}" for i in range(3)],
                         labels=["nz"] * 3, reach=["99.2"], out=tmp_path / "m", plots=False)
    assert seeds.table[0]["reach 99.2 %"]["reached"] == 2
    assert "[2 of 3]" in seeds.format_table()
