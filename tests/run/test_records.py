"""Results in Python: RunResult and CompareResult as records, DataFrames, short reprs and HTML."""
import csv
import re

import pytest

from ocdl.api import compare, compare_runs, solve
from ocdl.errors import MissingPackageError

import run_fakes as fakes  # tests/run is on sys.path (conftest.py)

SOLVERS = ["fake", "fake-nan@100000", "fake-kbi@100000"]


@pytest.fixture(scope="module")
def three_by_three(tmp_path_factory):
    """3 solvers × 3 seeds of the stand-in solvers, 1 epoch each, with a setting for all (made
    once for this module's tests, which only read it)."""
    tmp = tmp_path_factory.mktemp("records")
    model = tmp / "tiny.yaml"
    model.write_text(fakes.TINY_SPEC)
    with pytest.MonkeyPatch.context() as mp:
        fakes.install(mp)
        return compare(model, SOLVERS, seeds=3, epochs=1, out=tmp / "c", plots=False,
                       overrides={"gain": 150.0, "data.limit": 60})


def test_compare_records_one_row_per_solver_and_seed(three_by_three):
    res = three_by_three
    records = res.to_records()
    assert len(records) == 9
    assert [(r["label"], r["seed"]) for r in records] == [(s, k) for s in SOLVERS
                                                          for k in range(3)]
    for rec, run in zip(records, [r for rs in res.runs.values() for r in rs]):
        assert rec["final_test_acc"] == run.final_test_acc
        assert rec["best_test_acc"] == run.best_test_acc
        assert rec["nonzero_fraction"] == run.nonzero_fraction
        assert rec["epochs"] == 1 and rec["status"] == "completed"
        assert rec["wall_time"] == run.wall_time and rec["run_dir"] == str(run.run_dir)
        assert rec["gain"] == 150.0          # a --set setting given to every run is a column
        assert not any(isinstance(v, (dict, list)) for v in rec.values())  # flat
    # the same rows in compare.csv, written through the same records
    rows = list(csv.DictReader((res.out_dir / "compare.csv").open()))
    assert [r["run_dir"] for r in rows] == [r["run_dir"] for r in records]
    assert rows[0]["gain"] == "150.0" and rows[0]["label"] == "fake"


def test_records_have_a_column_for_settings_that_differ(fake, tiny_model, tmp_path):
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "a", overrides={"lr": 0.01})
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "b", overrides={"lr": 0.02})
    solve(tiny_model, "fake", epochs=1, seed=1, out=tmp_path / "c")
    res = compare_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"], out=tmp_path / "cmp",
                       plots=False)
    recs = res.to_records()  # runs read back from their folders: settings from config.yaml
    assert [r["lr"] for r in recs] == [0.01, 0.02, 0.05]   # c: the preset's 0.05
    assert [r["seed"] for r in recs] == [0, 0, 1]
    assert "gain" not in recs[0]                           # the same in every run: no column
    one = solve(tiny_model, "fake", epochs=1, out=tmp_path / "d", overrides={"gain": 120.0})
    (rec,) = one.to_records()
    assert rec["gain"] == 120.0 and rec["final_test_acc"] == one.final_test_acc
    assert "label" not in rec


def test_to_pandas_groups_by_solver(three_by_three):
    pd = pytest.importorskip("pandas")
    df = three_by_three.to_pandas()
    assert isinstance(df, pd.DataFrame) and df.shape[0] == 9
    means = df.groupby("label")["final_test_acc"].mean()
    for label, rs in three_by_three.runs.items():
        assert means[label] == pytest.approx(sum(r.final_test_acc for r in rs) / 3)
    one = three_by_three.runs["fake"][0].to_pandas()
    assert one.shape[0] == 1 and one["seed"].iloc[0] == 0


def test_to_pandas_without_pandas_says_how_to_install(three_by_three, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(MissingPackageError) as e:
        three_by_three.to_pandas()
    assert "pip install 'ocdl[pandas]'" in str(e.value) and "\n" not in str(e.value)


def test_compare_repr_fits_a_screen(three_by_three):
    text = repr(three_by_three)
    lines = text.splitlines()
    assert len(lines) <= 25 and max(len(x) for x in lines) <= 100, text
    assert "'tiny'" in lines[0] and "3 solver(s) × 3 seed(s), 9 run(s)" in lines[0]
    for label, rs in three_by_three.runs.items():
        mean = sum(r.final_test_acc for r in rs) / 3
        row = next(x for x in lines if x.startswith(f"| {label} "))
        assert f"{100 * mean:.2f} ± " in row
    assert "'loss'" not in text and "history" not in text   # no epoch records


def test_run_repr_is_short(three_by_three):
    r = three_by_three.runs["fake"][0]
    text = repr(r)
    lines = text.splitlines()
    assert len(lines) <= 4 and max(len(x) for x in lines) <= 100, text
    assert text.startswith("RunResult(model='tiny', solver='fake', seed=0")
    assert f"final_test_acc={round(r.final_test_acc, 4)!r}" in text
    assert "'loss'" not in text


def test_html_views(three_by_three):
    html = three_by_three._repr_html_()
    assert html.startswith("<table>") and html.endswith("</table>")
    assert html.count("<tr>") == 1 + 3 and html.count("<table>") == html.count("</table>") == 1
    for label in SOLVERS:
        assert f"<td>{label}</td>" in html
    assert re.search(r"<th>final test acc</th>", html)
    one = three_by_three.runs["fake"][0]._repr_html_()
    assert "<th>final test accuracy</th>" in one and "tiny, solver fake, seed 0" in one
