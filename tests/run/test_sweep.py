"""Sweeps: the grid, its points' folders, the table, resuming, and refusing another sweep's
folder (on the stand-in solver and data, see run_fakes.py)."""
import json

import pytest

from ocdl.api import sweep
from ocdl.errors import ConfigError, RunInterrupted
from ocdl.run.grid import grid_points, parse_grid

from run_helpers import log_records


def test_parse_grid_reads_values_as_settings():
    grid = parse_grid(["rho=0.3,0.5,1e-7", "seed=0,1", "betas=[0.9,0.99],[0.8,0.9]",
                       "keep_units=true,false"])
    assert grid == {"rho": [0.3, 0.5, 1e-7], "seed": [0, 1],
                    "betas": [[0.9, 0.99], [0.8, 0.9]], "keep_units": [True, False]}
    assert parse_grid({"rho": [0.5], "seed": 2}) == {"rho": [0.5], "seed": [2]}


@pytest.mark.parametrize("items, fragment", [
    (["rho"], "expected KEY=V1,V2"),
    (["=0.3"], "expected KEY=V1,V2"),
    (["rho="], "no values"),
    (["rho=0.3,,0.5"], "an empty value"),
    (["rho=0.3", "rho=0.5"], "given twice"),
    (["rho=0.3,0.3"], "listed twice"),
    (["seed=0,-1"], "integers ≥ 0"),
    (["seed=a"], "integers ≥ 0"),
    ([], "at least one grid axis"),
])
def test_bad_grids_are_refused(items, fragment):
    with pytest.raises(ConfigError, match=fragment) as e:
        parse_grid(items)
    assert "\n" not in str(e.value)


def test_points_are_named_by_their_values_first_axis_slowest():
    points = grid_points(parse_grid(["rho=0.25,0.5", "seed=0,1"]))
    assert [p.name for p in points] == ["rho=0.25,seed=0", "rho=0.25,seed=1",
                                        "rho=0.5,seed=0", "rho=0.5,seed=1"]
    assert [(p.settings, p.seed, p.label) for p in points[1:3]] == [
        ({"rho": 0.25}, 1, "rho=0.25"), ({"rho": 0.5}, 0, "rho=0.5")]
    # the command line's text and Python's values give the same folders
    assert [p.name for p in grid_points({"lr": [1e-3, 0.01]}, seed=3)] == ["lr=0.001", "lr=0.01"]
    assert grid_points({"lr": [1e-3]}, seed=3)[0].seed == 3


def test_sweep_table_averages_seeds_and_a_rerun_skips_finished_points(fake, tiny_model,
                                                                       tmp_path):
    out = tmp_path / "sw"
    res = sweep(tiny_model, "fake", grid=["gain=100,200", "seed=0,1"], epochs=1, out=out,
                overrides={"data.limit": 40}, plots=False)
    names = ["gain=100,seed=0", "gain=100,seed=1", "gain=200,seed=0", "gain=200,seed=1"]
    assert res.done == dict.fromkeys(names, "ran")
    assert [row["solver"] for row in res.table] == ["gain=100", "gain=200"]
    assert [row["seeds"] for row in res.table] == [2, 2]
    runs = res.runs["gain=200"]
    assert [r.run_dir.name for r in runs] == names[2:]
    assert res.table[1]["final_test_acc"][0] == pytest.approx(
        sum(r.final_test_acc for r in runs) / 2)
    cfg = (out / "gain=200,seed=1" / "config.yaml").read_text()
    assert "gain: 200" in cfg and "seed: 1" in cfg and "data.limit: 40" in cfg
    recs = res.to_records()
    assert [(r["label"], r["gain"], r["seed"]) for r in recs] == [
        ("gain=100", 100, 0), ("gain=100", 100, 1), ("gain=200", 200, 0), ("gain=200", 200, 1)]
    assert len((out / "compare.csv").read_text().splitlines()) == 1 + 4
    assert "| gain=100 |" in (out / "compare.md").read_text()
    stamps = {n: (out / n / "log.jsonl").stat().st_mtime_ns for n in names}
    again = sweep(tiny_model, "fake", grid=["gain=100,200", "seed=0,1"], epochs=1, out=out,
                  overrides={"data.limit": 40}, plots=False)
    assert again.done == dict.fromkeys(names, "skipped")
    assert {n: (out / n / "log.jsonl").stat().st_mtime_ns for n in names} == stamps
    assert again.table == res.table


def test_an_interrupted_point_is_resumed_not_restarted(fake, tiny_model, tmp_path):
    out = tmp_path / "sw"
    args = dict(grid=["gain=100,200"], epochs=2, out=out, plots=False)
    with pytest.raises(RunInterrupted, match="run the same command again to resume"):
        sweep(tiny_model, "fake-kbi@15", **args)  # Ctrl-C in epoch 2 of the first point
    first = out / "gain=100"
    assert (first / "last.pt").is_file()
    assert json.loads((first / "summary.json").read_text())["status"] == "interrupted"
    assert not (out / "gain=200").exists()
    res = sweep(tiny_model, "fake-kbi@15", **args)  # fires once
    assert res.done == {"gain=100": "resumed", "gain=200": "ran"}
    epochs = [r["epoch"] for r in log_records(first) if r.get("type") == "epoch"]
    assert epochs == [1, 2]                          # each epoch once: continued, not redone
    assert json.loads((first / "summary.json").read_text())["status"] == "completed"


def test_another_sweep_in_the_same_folder_is_refused(fake, tiny_model, tmp_path):
    out = tmp_path / "sw"
    sweep(tiny_model, "fake", grid=["gain=100"], epochs=1, out=out, plots=False)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ConfigError, match=r"holds a sweep over another grid \(gain=100, not "
                                          r"gain=100,200\)"):
        sweep(tiny_model, "fake", grid=["gain=100,200"], epochs=1, out=out, plots=False)
    with pytest.raises(ConfigError, match=r"another sweep \(epochs: 1 there, 2 here\)"):
        sweep(tiny_model, "fake", grid=["gain=100"], epochs=2, out=out, plots=False)
    with pytest.raises(ConfigError,
                       match=r"another sweep \(settings: \{\} there, \{'lr': 0.1\} here\)"):
        sweep(tiny_model, "fake", grid=["gain=100"], epochs=1, out=out, plots=False,
              overrides={"lr": 0.1})
    assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no sweep.yaml"):
        sweep(tiny_model, "fake", grid=["gain=100"], epochs=1, out=tmp_path / "other")


def test_settings_are_checked_before_anything_runs(fake, tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="both a grid axis and a fixed setting"):
        sweep(tiny_model, "fake", grid=["gain=1,2"], overrides={"gain": 3}, out=tmp_path / "a")
    with pytest.raises(Exception, match="has no setting 'gian'"):
        sweep(tiny_model, "fake", grid=["gian=1,2"], out=tmp_path / "b")
    with pytest.raises(ConfigError, match="unknown run setting"):
        sweep(tiny_model, "fake", grid=["run.evry=1,2"], out=tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in "abc")
