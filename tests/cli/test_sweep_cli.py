"""``ocdl sweep`` on the shipped quickstart model (1 epoch on 100 images a point): run folders,
table and plots, resuming without redoing finished points, refusing another grid's folder,
one-line errors."""
import csv

import pytest
from click.testing import CliRunner

from ocdl.cli import cli

SWEEP = ["sweep", "quickstart", "--solver", "emsa-ternary", "--epochs", "1",
         "--set", "data.limit=100", "--quiet"]
NAMES = ["rho=0.25,seed=0", "rho=0.25,seed=1", "rho=0.5,seed=0", "rho=0.5,seed=1"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def files_of(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()}


def test_sweep_runs_resumes_and_refuses_another_grid(tmp_path):
    out = tmp_path / "sw"
    r = invoke(*SWEEP, "--grid", "rho=0.25,0.5", "--grid", "seed=0,1", "--out", out)
    assert r.exit_code == 0, r.output
    assert "4 ran" in r.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == NAMES
    for name in NAMES:
        assert (out / name / "summary.json").is_file() and (out / name / "controls.pt").is_file()
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert len(rows) == 4
    assert [(x["label"], x["rho"], x["seed"]) for x in rows] == [
        ("rho=0.25", "0.25", "0"), ("rho=0.25", "0.25", "1"), ("rho=0.5", "0.5", "0"),
        ("rho=0.5", "0.5", "1")]
    assert all(x["status"] == "completed" and 0.0 < float(x["final_test_acc"]) <= 1.0
               for x in rows)
    md = (out / "compare.md").read_text().splitlines()
    table = [x for x in md if x.startswith("| rho=")]
    assert [x.split("|")[1].strip() for x in table] == ["rho=0.25", "rho=0.5"]
    assert all(x.split("|")[2].strip() == "2" for x in table)   # the two seeds averaged
    assert (out / "accuracy_vs_epoch.png").read_bytes()[:4] == b"\x89PNG"
    assert "| rho=0.25 |" in r.output

    before = {n: files_of(out / n) for n in NAMES}
    r = invoke(*SWEEP, "--grid", "rho=0.25,0.5", "--grid", "seed=0,1", "--out", out)
    assert r.exit_code == 0, r.output
    assert "4 skipped" in r.output
    assert {n: files_of(out / n) for n in NAMES} == before       # finished points untouched

    r = invoke(*SWEEP, "--grid", "rho=0.25,0.75", "--grid", "seed=0,1", "--out", out)
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "another grid" in err and "rho=0.25,0.5" in err
    assert not (out / "rho=0.75,seed=0").exists()


@pytest.mark.parametrize("grid, fragment", [
    ("rho", "expected KEY=V1,V2"),
    ("rho=0.3,,0.5", "an empty value"),
    ("seed=x", "integers ≥ 0"),
    ("rhoo=0.3,0.5", "has no setting 'rhoo'"),
])
def test_bad_grid_is_a_one_line_error(tmp_path, grid, fragment):
    r = invoke(*SWEEP, "--grid", grid, "--out", tmp_path / "sw")
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err, err
    assert "Traceback" not in r.output and not (tmp_path / "sw").exists()


@pytest.mark.slow
def test_sweep_jobs_run_points_in_separate_processes(tmp_path):
    out = tmp_path / "sw"
    r = invoke(*SWEEP, "--grid", "rho=0.25,0.5", "--jobs", "2", "--out", out)
    assert r.exit_code == 0, r.output
    assert "2 ran" in r.output
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(x["label"], x["status"]) for x in rows] == [("rho=0.25", "completed"),
                                                         ("rho=0.5", "completed")]
    # the same result as one point run in this process
    solo = invoke(*SWEEP, "--grid", "rho=0.25", "--out", tmp_path / "solo")
    assert solo.exit_code == 0, solo.output
    one = list(csv.DictReader((tmp_path / "solo" / "compare.csv").open()))[0]
    assert one["final_test_acc"] == rows[0]["final_test_acc"]
