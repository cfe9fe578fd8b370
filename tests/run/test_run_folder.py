"""Run folders: one writer at a time (an OS lock), no dead ends, and damaged files refused with
one line that names the file, with nothing overwritten."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ocdl.api import evaluate, solve
from ocdl.errors import OcdlError
from ocdl.models import model_path
from ocdl.run.folder import LOCK, RunFolderBusy, RunLock, claim, new_run_dir, read_config

from run_helpers import assert_same_state, load, log_records

ROOT = Path(__file__).resolve().parents[2]
SET = {"run.log_every": 4, "run.device": "cpu"}


def snapshot(run: Path) -> dict[str, bytes]:
    """The files of a run folder (but its lock file, which a refused writer may create)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK}


# ---------------------------------------------------------------------- one writer
def test_a_locked_folder_is_refused_for_a_new_run_and_for_resume(fake, tiny_model, tmp_path):
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "done", overrides=SET)
    for target, call in [(tmp_path / "new", lambda: solve(tiny_model, "fake", epochs=1,
                                                           out=tmp_path / "new")),
                         (tmp_path / "done", lambda: solve(resume=tmp_path / "done",
                                                           epochs=2))]:
        target.mkdir(exist_ok=True)
        before = snapshot(target)
        with RunLock(target):
            with pytest.raises(RunFolderBusy, match="in use by another ocdl process"):
                call()
        assert snapshot(target) == before
    # released: both go ahead
    assert solve(resume=tmp_path / "done", epochs=2).epochs == 2
    assert solve(tiny_model, "fake", epochs=1, out=tmp_path / "new").epochs == 1


def test_claim_refuses_a_file_and_a_folder_with_a_run(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OcdlError, match="is a file"):
        claim(tmp_path / "f", "m")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("x")  # a run killed before its first log line
    with pytest.raises(OcdlError, match="already holds a run.*--resume"):
        claim(tmp_path / "r", "m")
    run, lock = claim(tmp_path / "fresh", "m")
    assert lock.held and run.is_dir()
    lock.release()


def test_default_folders_are_distinct_in_the_same_second(tmp_path):
    dirs = [new_run_dir("m-s", root=tmp_path) for _ in range(5)]
    assert len(set(dirs)) == 5 and all(d.is_dir() for d in dirs)


def test_two_processes_with_the_same_out(tmp_path):
    """Started together, one trains and the other is refused at once; the log holds every
    epoch once."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for trial in range(2):
        out = tmp_path / f"run{trial}"
        cmd = [sys.executable, "-m", "ocdl", "solve", str(model_path("quickstart")),
               "--epochs", "2", "--device", "cpu", "--quiet", "--set", "data.limit=1000",
               "--out", str(out)]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        assert codes == [0, 2], results
        refused = next(err for rc, err in results if rc == 2)
        assert refused.count("\n") == 1 and ("in use by another ocdl process" in refused
                                             or "already holds a run" in refused), refused
        epochs = [r["epoch"] for r in log_records(out) if r.get("type") == "epoch"]
        assert epochs == [1, 2]


# ---------------------------------------------------------------------- no dead ends
def test_a_run_stopped_before_its_first_checkpoint_starts_again(fake, tiny_model, tmp_path):
    full = tmp_path / "full"
    solve(tiny_model, "fake", epochs=2, out=full, overrides=SET)
    # what a kill -9 during the first epoch leaves: config.yaml and some of the log
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.yaml").write_bytes((full / "config.yaml").read_bytes())
    (cut / "log.jsonl").write_text((full / "log.jsonl").read_text().splitlines()[0][:-9])
    (cut / ".last.pt.tmp-12345").write_bytes(b"half a checkpoint")
    with pytest.raises(OcdlError, match="already holds a run.*--resume"):
        solve(tiny_model, "fake", epochs=2, out=cut)
    res = solve(resume=cut)
    assert res.epochs == 2 and res.status == "completed"
    assert_same_state(load(full / "controls.pt"), load(cut / "controls.pt"))
    assert log_records(full) == log_records(cut)
    assert not list(cut.glob(".*.tmp-*"))


# ---------------------------------------------------------------------- damaged files
@pytest.fixture
def run_dir(fake, tiny_model, tmp_path) -> Path:
    run = tmp_path / "run"
    solve(tiny_model, "fake", epochs=1, out=run, overrides=SET)
    return run


def one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("damage, what", [
    (lambda b: os.urandom(len(b)), "damaged or truncated"),
    (lambda b: b[: len(b) // 2], "damaged or truncated"),
    (lambda b: b"", "damaged or truncated"),
])
def test_damaged_controls_and_checkpoints(run_dir, damage, what):
    for name, read in [("controls.pt", lambda: evaluate(run_dir, device="cpu")),
                       ("best.pt", lambda: evaluate(run_dir, controls="best", device="cpu")),
                       ("last.pt", lambda: solve(resume=run_dir, epochs=2))]:
        path = run_dir / name
        good = path.read_bytes()
        path.write_bytes(damage(good))
        before = snapshot(run_dir)
        with pytest.raises(OcdlError) as ei:
            read()
        assert what in one_line_naming(ei, path)
        assert snapshot(run_dir) == before  # nothing overwritten
        path.write_bytes(good)


@pytest.mark.parametrize("state, what", [
    ({"theta": "not a mapping"}, "not in the form"),
    ({"theta": {"fc1.weight": torch.zeros(3)}}, "do not match this model"),
    ("a string", "does not hold a network's controls"),
])
def test_controls_of_the_wrong_form(run_dir, state, what):
    torch.save(state, run_dir / "controls.pt")
    with pytest.raises(OcdlError) as ei:
        evaluate(run_dir, device="cpu")
    assert what in one_line_naming(ei, run_dir / "controls.pt")


def test_controls_of_the_wrong_shape(run_dir):
    good = load(run_dir / "controls.pt")
    good["theta"]["fc2.weight"] = torch.zeros(2, 2)
    torch.save(good, run_dir / "controls.pt")
    with pytest.raises(OcdlError) as ei:
        evaluate(run_dir, device="cpu")
    assert "fc2.weight has shape [2, 2]" in one_line_naming(ei, run_dir / "controls.pt")


def test_an_incomplete_checkpoint(run_dir):
    ck = load(run_dir / "last.pt")
    del ck["solver_state"]
    torch.save(ck, run_dir / "last.pt")
    before = snapshot(run_dir)
    with pytest.raises(OcdlError) as ei:
        solve(resume=run_dir, epochs=2)
    assert "solver_state" in one_line_naming(ei, run_dir / "last.pt")
    assert snapshot(run_dir) == before


def _bad_utf8(text: str) -> bytes:
    head, tail = text.split("model:", 1)
    return head.encode() + b"model:\xff\xfe" + tail.encode()


@pytest.mark.parametrize("damage, what", [
    (_bad_utf8, "not UTF-8"),
    (lambda t: t[: len(t) // 3], "not an ocdl run config"),   # cut: no solver, no run
    (lambda t: t.replace("units: 16", "units: -16"), "units"),  # the recorded model edited
    (lambda t: t.replace("stages:", "stages: [", 1), "YAML syntax error"),
    (lambda t: "&a [*a, *a]\n", "recursive alias"),
])
def test_a_damaged_config_yaml_is_named_and_kept(run_dir, tmp_path, damage, what):
    path = run_dir / "config.yaml"
    text = path.read_text()
    bad = damage(text)
    path.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    before = snapshot(run_dir)
    for call in (lambda: solve(resume=run_dir, epochs=2),
                 lambda: evaluate(run_dir, device="cpu"),
                 lambda: read_config(path).spec(),
                 lambda: solve(like=run_dir, out=tmp_path / "like")):
        with pytest.raises(OcdlError) as ei:
            call()
        msg = one_line_naming(ei, path)
        assert what in msg
        assert "tiny.yaml" not in msg  # the run folder's file is named, not the model file
        assert snapshot(run_dir) == before
    assert not (tmp_path / "like").exists()


def test_a_log_shorter_than_the_checkpoint_says(run_dir):
    log = run_dir / "log.jsonl"
    log.write_bytes(log.read_bytes()[:100])
    before = snapshot(run_dir)
    with pytest.raises(OcdlError) as ei:
        solve(resume=run_dir, epochs=2)
    assert "shorter" in one_line_naming(ei, log)
    assert snapshot(run_dir) == before


def test_an_unreadable_summary_is_named(run_dir):
    from ocdl.api import compare_runs
    (run_dir / "summary.json").write_bytes(b"\xff{")
    with pytest.raises(OcdlError) as ei:
        compare_runs([run_dir], out=run_dir.parent / "cmp")
    one_line_naming(ei, run_dir / "summary.json")
