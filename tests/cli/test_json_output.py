"""``--json``: every command that reports something can print it as one JSON object on stdout
(messages and progress stay on stderr), and tables are never cut when piped."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ocdl.cli import cli


def run_json(*args: str) -> dict:
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_explain_json_of_a_network_has_every_stage_and_the_totals():
    d = run_json("explain", "quickstart")
    assert d["kind"] == "network" and d["input"] == [784] and d["output"] == [10]
    assert [s["name"] for s in d["stages"]][:3] == ["fc1", "bn1", "relu1"]
    assert d["stages"][0]["params"] == 784 * 256 and d["stages"][0]["shape"] == [256]
    assert d["control_entries"] == sum(s["params"] for s in d["stages"])
    assert d["T"] == len(d["stages"]) and d["cost"]["terminal"]


def test_explain_json_of_an_equation_model_has_its_equations():
    d = run_json("explain", "lqr-scalar")
    assert d["kind"] == "equations" and d["S"] >= 1
    labels = [e["label"] for e in d["equations"]]
    assert labels[0] == "dynamics" and "Hamiltonian" in labels and "costate" in labels


def test_data_list_and_info_json():
    d = run_json("data", "list")
    names = [r["name"] for r in d["datasets"]]
    assert {"mnist", "fashion-mnist", "cifar-10", "mnist-subset"} <= set(names)
    sub = d["datasets"][names.index("mnist-subset")]
    assert sub["found"] and sub["classes"] == 10 and sub["sample_shape"] == [1, 28, 28]
    info = run_json("data", "info", "mnist-subset")
    counts = info["samples_per_class"]
    assert sum(counts["train"]) == sub["train"] and sum(counts["test"]) == sub["test"]


def test_solve_json_is_the_runs_summary(tmp_path):
    d = run_json("solve", "tiny-tanh-net", "--epochs", "2", "--out", str(tmp_path / "r"))
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert d["run_dir"] == str(tmp_path / "r") and d["epochs"] == 2
    assert {k: d[k] for k in saved if k in d} == {k: saved[k] for k in saved if k in d}


def test_check_json_reports_both_sides_and_keeps_the_exit_code():
    pytest.importorskip("casadi")
    d = run_json("check", "lqr-scalar", "--iters", "300")
    assert d["ok"] is True and d["gap"] <= d["tol"]
    assert abs(d["ocdl"]["J"] - d["casadi"]["J"]) <= d["tol"] * max(1.0, abs(d["casadi"]["J"]))
    r = CliRunner().invoke(cli, ["check", "lqr-scalar", "--iters", "300", "--perturb", "0.5",
                                 "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["ok"] is False
    assert "check failed" in r.stderr


def test_tables_are_not_cut_when_piped():
    r = CliRunner().invoke(cli, ["data", "list"])  # CliRunner's stdout is not a terminal
    assert r.exit_code == 0
    assert "fashion-mnist " in r.stdout and "…" not in r.stdout
    assert all(len(line) > 100 for line in r.stdout.splitlines()[1:4])  # wider than 80 columns


def test_compare_compare_runs_and_sweep_json(tmp_path):
    fast = ["--epochs", "1", "--set", "data.limit=200", "--quiet"]
    d = run_json("compare", "quickstart", "--solvers", "emsa-ternary,twn", *fast,
                 "--out", str(tmp_path / "c"))
    assert [row["solver"] for row in d["table"]] == ["emsa-ternary", "twn"]
    assert len(d["runs"]) == 2 and {r["solver"] for r in d["runs"]} == {"emsa-ternary", "twn"}
    assert d["out_dir"] == str(tmp_path / "c")
    folders = [r["run_dir"] for r in d["runs"]]
    g = run_json("compare-runs", *folders, "--labels", "a,b", "--out", str(tmp_path / "g"))
    assert g["label"] == "run" and [row["solver"] for row in g["table"]] == ["a", "b"]
    assert [r["final_test_acc"] for r in g["runs"]] == [r["final_test_acc"] for r in d["runs"]]
    s = run_json("sweep", "quickstart", "--solver", "emsa-ternary", "--grid", "rho=0.25,0.5",
                 *fast, "--out", str(tmp_path / "s"))
    assert sorted(r["run_dir"].rsplit("/", 1)[1] for r in s["runs"]) == ["rho=0.25", "rho=0.5"]
