"""compare: one run per (solver, seed), a table with mean ± std, PNG plots."""
import json

import pytest

from ocdl.api import compare
from ocdl.errors import OcdlError


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


# docs/RESULTS.md's CIFAR-10 table rows, as its run records (docs/runs) give them back
RESULTS_ROWS = {  # folder: (epochs, final %, best %, at best valid %, non-zero %, device)
    "cifar10-h100-binary": (88, 89.88, 90.04, 89.83, 100.0, "cuda"),
    "cifar10-h100-ternary-sparse": (84, 87.17, 87.21, 87.17, 0.49, "cuda"),
    "cifar10-h100-ternary-fc-sparse-10min": (179, 87.98, 88.51, 87.98, 1.25, "cuda"),
    "cifar10-h100-ternary-fc-sparse-nz-10min": (175, 89.10, 89.27, 89.27, 1.95, "cuda"),
    "cifar10-h100-ternary-fc-sparse-3min": (28, 85.36, 85.63, 85.36, 1.45, "cuda"),
    "cifar10-h100-ternary-fc-sparse-cutout-3min": (28, 83.27, 83.33, 83.31, 1.30, "cuda"),
    "mnist20-binary-seed0": (20, 99.09, 99.18, 99.09, 100.0, "cpu"),
    "mnist20-binary-seed1": (20, 99.04, 99.14, 99.03, 100.0, "cpu"),
    "mnist20-ternary-nz-seed0": (20, 99.12, 99.15, 99.14, 1.95, "cpu"),
    "mnist20-ternary-nz-seed1": (20, 99.14, 99.24, 99.04, 1.95, "cpu"),
    "mnist20-binary-seed2": (20, 99.11, 99.11, 99.11, 100.0, "cpu"),
    "mnist20-ternary-nz-seed2": (20, 99.20, 99.23, 99.23, 1.95, "cpu"),
    "mnist20-ternary-sparse-seed0": (20, 99.22, 99.22, 99.22, 1.05, "cpu"),
    "mnist20-ternary-sparse-seed1": (20, 99.11, 99.22, 99.17, 1.03, "cpu"),
    "mnist20-ternary-sparse-seed2": (20, 99.18, 99.20, 98.99, 1.03, "cpu"),
    "mnist20-ternary-nz-seed0-bf16": (20, 99.14, 99.15, 99.13, 1.95, "cpu"),  # session 13
    # the half-width CIFAR-10 stand-ins of session 10 (two stopped after epoch 20)
    "cifar10-half-cpu-fixed-lambda": (60, 61.36, 61.95, 61.95, 20.46, "cpu"),
    "cifar10-half-cpu-held-from-start": (60, 21.73, 24.67, 24.67, 1.93, "cpu"),
    "cifar10-half-cpu-held-from-0.3": (60, 15.88, 49.82, 49.82, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3": (60, 58.87, 58.87, 58.87, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-start": (60, 18.33, 55.98, 55.98, 2.12, "cpu"),
    "cifar10-half-cpu-annealed-from-start-floor": (60, 58.01, 58.01, 58.01, 1.94, "cpu"),
    # session 12's stand-ins: bf16, and cutout (with the annealed target it collapsed: stopped)
    "cifar10-half-cpu-annealed-from-0.3-bf16": (60, 52.74, 54.12, 54.12, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-cutout": (45, 13.86, 44.39, 44.39, 4.70, "cpu"),
    "cifar10-half-cpu-fixed-lambda-cutout": (60, 49.43, 49.58, 49.58, 21.16, "cpu"),
    # session 13: the annealed stand-in again with seed 1, in float32 and in bf16
    "cifar10-half-cpu-annealed-from-0.3-seed1": (60, 57.45, 57.45, 57.45, 1.94, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-bf16-seed1": (60, 50.55, 53.81, 53.81, 1.95, "cpu"),
    # ... and in float32 with 2 % / 8 % Gaussian noise in every M (tools/noisy_m.py)
    "cifar10-half-cpu-annealed-from-0.3-noise2": (60, 57.40, 57.40, 57.40, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-noise8": (60, 17.37, 50.60, 50.60, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-noise8-scaled": (60, 14.61, 52.96, 52.96, 2.67, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-noise8-seed1": (60, 54.32, 54.32, 54.32, 1.95, "cpu"),
    # session 14: dead units counted; keep_units against the runs above (one thread)
    "cifar10-half-cpu-annealed-from-0.3-noise8-rerun": (60, 10.00, 53.30, 53.30, 15.42, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-keep": (60, 62.15, 62.15, 62.15, 1.92, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-cutout-keep": (60, 50.10, 50.17, 50.17, 1.90, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-noise8-keep": (60, 59.15, 59.15, 59.15, 1.93, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-keep-seed1": (60, 59.18, 59.30, 59.30, 1.94, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-seed1-rerun": (60, 52.93, 53.53, 53.53, 1.94, "cpu"),
    # session 15: the stand-in pair with seed 2, the collapsed schedules with keep_units; the
    # MNIST ternary recipe again (one thread, counted), and with keep_units
    "cifar10-half-cpu-annealed-from-0.3-seed2": (60, 57.53, 57.53, 57.53, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-0.3-keep-seed2": (60, 62.19, 62.19, 62.19, 1.93, "cpu"),
    "cifar10-half-cpu-held-from-0.3-keep": (60, 62.56, 62.57, 62.57, 1.95, "cpu"),
    "cifar10-half-cpu-annealed-from-start-keep": (60, 61.00, 61.00, 61.00, 1.92, "cpu"),
    "mnist20-ternary-nz-seed0-rerun": (20, 99.12, 99.15, 99.14, 1.95, "cpu"),
    "mnist20-ternary-nz-seed0-keep": (20, 99.15, 99.18, 99.15, 1.95, "cpu"),
    # session 16: the 20-epoch MNIST recipes on Fashion-MNIST (flips), three seeds, the ternary
    # one also with keep_units
    "fashion20-binary-seed0": (20, 90.41, 90.72, 90.41, 100.0, "cpu"),
    "fashion20-binary-seed1": (20, 90.74, 90.74, 90.74, 100.0, "cpu"),
    "fashion20-binary-seed2": (20, 90.53, 90.53, 90.53, 100.0, "cpu"),
    "fashion20-ternary-nz-seed0": (20, 90.21, 90.35, 90.35, 1.95, "cpu"),
    "fashion20-ternary-nz-seed1": (20, 90.14, 90.30, 90.05, 1.95, "cpu"),
    "fashion20-ternary-nz-seed2": (20, 90.01, 90.23, 90.23, 1.95, "cpu"),
    "fashion20-ternary-nz-seed0-keep": (20, 90.45, 90.45, 90.19, 1.95, "cpu"),
    "fashion20-ternary-nz-seed1-keep": (20, 90.26, 90.28, 90.28, 1.95, "cpu"),
    "fashion20-ternary-nz-seed2-keep": (20, 90.13, 90.49, 90.09, 1.95, "cpu"),
}


def test_docs_run_records_give_back_the_results_tables():
    from ocdl.run.results import load_run
    from tests.conftest import ROOT

    for name, (epochs, final, best, at_valid, nonzero, device) in RESULTS_ROWS.items():
        r = load_run(ROOT / "docs" / "runs" / name)
        got = (r.epochs, r.final_test_acc * 100, r.best_test_acc * 100,
               r.test_acc_at_best_valid * 100, r.nonzero_fraction * 100)
        assert got == pytest.approx((epochs, final, best, at_valid, nonzero), abs=0.006), name
        assert r.device == device and r.history[-1].get("test_acc") is not None


def record(name: str) -> list[dict]:
    """The epoch records of the RESULTS run ``docs/runs/NAME``."""
    from ocdl.run.results import load_run
    from tests.conftest import ROOT
    return load_run(ROOT / "docs" / "runs" / name).history


def by_epoch(name: str) -> dict[int, dict]:
    """:func:`record`, keyed by epoch."""
    return {r["epoch"]: r for r in record(name)}


def test_docs_dead_unit_counts_give_back_the_results_table():
    """RESULTS "Dead units": the 8 % noise rerun's dead fc2 units by epoch, 97–100 % of the units
    of every layer but conv6 dead at the end, all ten outputs among them; 43 % of all units
    dead at the end of the seed-1 rerun without noise; none dead with keep_units, whose fc1
    ends at 0.06 % non-zero."""
    h = by_epoch("cifar10-half-cpu-annealed-from-0.3-noise8-rerun")
    got = [round(100 * h[e]["dead/fc2"]) for e in (20, 25, 30, 35, 40, 45, 50, 55, 60)]
    assert got == [0, 0, 32, 63, 65, 68, 76, 98, 100]
    assert round(100 * h[25]["dead/fc1"]) == 8 and h[60]["dead/conv6"] == 0.0
    assert all(h[60][f"dead/{k}"] >= 0.96 for k in ("conv1", "conv2", "conv3", "conv4",
                                                       "conv5", "fc1", "fc2"))
    assert h[60]["dead/fc3"] == 1.0
    last = record("cifar10-half-cpu-annealed-from-0.3-seed1-rerun")[-1]
    assert [round(100 * last[k]) for k in ("dead", "dead/fc1", "dead/fc2", "dead/conv6",
                                           "dead/conv5")] == [43, 62, 69, 39, 20]
    keep = record("cifar10-half-cpu-annealed-from-0.3-keep")
    assert all(v == 0.0 for r in keep for k, v in r.items() if k.startswith("dead/"))
    assert keep[-1]["nonzero/fc1"] * 100 == pytest.approx(0.06, abs=0.005)
    # seed 2 (session 15): parted from its keep_units twin in epoch 23, its first dead units
    s2 = by_epoch("cifar10-half-cpu-annealed-from-0.3-seed2")
    k2 = by_epoch("cifar10-half-cpu-annealed-from-0.3-keep-seed2")
    assert all(s2[e]["loss"] == k2[e]["loss"] and s2[e]["dead"] == 0.0 for e in range(1, 23))
    assert s2[23]["loss"] != k2[23]["loss"] and s2[23]["dead"] > 0.0
    assert [round(100 * s2[e]["dead"], 1) for e in (30, 50, 60)] == [17.7, 39.2, 39.0]
    assert all(r["dead"] == 0.0 for r in k2.values())


def test_docs_mnist_keep_units_records_give_back_the_results_table():
    """RESULTS "MNIST ... with keep_units": the one-thread rerun has the record's epochs, and
    22 of 6154 units dead at the end (18 in fc2, 4 in fc3) from epoch 9 on; none with keep_units."""
    recorded, rerun, keep = (record(f"mnist20-ternary-nz-seed0{s}")
                             for s in ("", "-rerun", "-keep"))
    for a, b in zip(recorded, rerun):
        assert (a["test_acc"], a["loss"], a["nonzero"]) == (b["test_acc"], b["loss"],
                                                             b["nonzero"])
    last = rerun[-1]
    assert (round(last["dead/fc2"] * 2048), round(last["dead/fc3"] * 2048)) == (18, 4)
    assert round(last["dead"] * 6154) == 22 and last["dead/fc1"] == last["dead/fc4"] == 0.0
    assert [r["epoch"] for r in rerun if r["dead"] == last["dead"]][0] == 9
    assert all(r["dead"] == 0.0 for r in keep)


def test_docs_fashion_keep_units_records_give_back_the_results_table():
    """RESULTS "The 20-epoch MNIST recipes on Fashion-MNIST": 51, 31 and 42 of 6154 units dead at
    the end of the three ternary seeds, the first ones in epoch 2; none with keep_units, each
    keep_units run equal to its twin through epoch 1 and ahead at the end."""
    for seed, dead in enumerate((51, 31, 42)):
        plain = record(f"fashion20-ternary-nz-seed{seed}")
        keep = record(f"fashion20-ternary-nz-seed{seed}-keep")
        assert round(plain[-1]["dead"] * 6154) == dead
        assert plain[0]["dead"] == 0.0 < plain[1]["dead"]
        assert plain[0]["loss"] == keep[0]["loss"] and plain[1]["loss"] != keep[1]["loss"]
        assert all(r["dead"] == 0.0 for r in keep)
        assert keep[-1]["test_acc"] > plain[-1]["test_acc"]


def test_dead_units_column_and_line_only_for_runs_that_counted_them(tmp_path):
    """The dead-unit fraction of the last epoch: a table column when some run has it ("-" for
    the others), none when no run has it; a line of ``describe``; a summary and CSV field."""
    from ocdl.run.results import compare_table, format_compare_table, result_from_history

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
    from ocdl.run.results import time_to_reach
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
    from ocdl.run.results import accuracy_level
    assert accuracy_level(given) == pytest.approx(level)


@pytest.mark.parametrize("given", [0, -5, 101, "abc", "", "nan"])
def test_accuracy_level_refuses_what_is_not_an_accuracy(given):
    from ocdl.run.config import ConfigError
    from ocdl.run.results import accuracy_level
    with pytest.raises(ConfigError, match="e.g. 0.89 or 89"):
        accuracy_level(given)


def test_compare_runs_reach_gives_the_times_in_results(tmp_path):
    """RESULTS: session 12's run crossed 89 % at epoch 132, 403 s of training; session 6's never
    did; the binary net got to 90 % at its epoch 84. Over the three MNIST seeds of the held
    target, two reached 99.2 %."""
    from ocdl.api import compare_runs
    from tests.conftest import ROOT
    runs = ROOT / "docs" / "runs"
    r = compare_runs([runs / "cifar10-h100-ternary-fc-sparse-nz-10min",
                      runs / "cifar10-h100-ternary-fc-sparse-10min", runs / "cifar10-h100-binary"],
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
    seeds = compare_runs([runs / f"mnist20-ternary-nz-seed{i}" for i in range(3)],
                         labels=["nz"] * 3, reach=["99.2"], out=tmp_path / "m", plots=False)
    assert seeds.table[0]["reach 99.2 %"]["reached"] == 2
    assert "[2 of 3]" in seeds.format_table()
