"""kill -9 at any point of a real run, then ``--resume``: the same controls and log as a run that
was never stopped (bit for bit on the CPU), every epoch logged exactly once.

The quickstart model and E-MSA run in subprocesses (``python -m ocdl solve``); the test watches
the run folder and sends SIGKILL when the run is at the point under test: before its first
checkpoint, mid-epoch after a mid-epoch checkpoint, or just after a checkpoint was written.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from run_helpers import assert_same_state, load, log_records
from ocdl.models import model_path

ROOT = Path(__file__).resolve().parents[2]
MODEL = model_path("quickstart")
# 3 epochs of 30 batches (90 iterations); checkpoints every 7 iterations and at epoch ends
ARGS = ["--solver", "emsa-ternary", "--epochs", "3", "--device", "cpu", "--quiet",
        "--set", "data.limit=3000", "--set", "run.checkpoint_every=7", "--set",
        "run.log_every=1"]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")


def ocdl(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ocdl", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def iterations(run: Path) -> int:
    try:
        return (run / "log.jsonl").read_text().count('"type": "iter"')
    except FileNotFoundError:
        return 0


def checkpoint_id(run: Path) -> tuple[int, int] | None:
    try:
        st = (run / "last.pt").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def kill_when(run: Path, ready: Callable[[Path], bool]) -> None:
    """Start the run in ``run`` and SIGKILL it as soon as ``ready(run)``."""
    p = ocdl("solve", str(MODEL), *ARGS, "--out", str(run))
    t0 = time.monotonic()
    while not ready(run):
        assert p.poll() is None, f"the run ended before the kill point: {p.communicate()[1]}"
        assert time.monotonic() - t0 < 120, "the kill point never came"
        time.sleep(0.0005)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    finish(ocdl("solve", str(MODEL), *ARGS, "--out", str(run)))
    return run


def assert_resumes_identically(run: Path, reference: Path) -> None:
    finish(ocdl("solve", "--resume", str(run), "--quiet"))
    assert_same_state(load(reference / "controls.pt"), load(run / "controls.pt"))
    records = log_records(run)
    assert records == log_records(reference)
    epochs = [r["epoch"] for r in records if r.get("type") == "epoch"]
    assert epochs == [1, 2, 3]
    iters = [r["iter"] for r in records if r.get("type") == "iter"]
    assert iters == list(range(1, 91))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"


def test_kill_before_the_first_checkpoint_starts_again(reference, tmp_path):
    run = tmp_path / "run"
    kill_when(run, lambda r: iterations(r) >= 2 and checkpoint_id(r) is None)
    assert not (run / "last.pt").exists() and (run / "config.yaml").exists()
    assert_resumes_identically(run, reference)


def test_kill_mid_epoch_after_a_mid_epoch_checkpoint(reference, tmp_path):
    run = tmp_path / "run"
    kill_when(run, lambda r: iterations(r) >= 47)  # epoch 2; checkpoint at iteration 42
    ck = load(run / "last.pt")
    assert ck["epoch"] == 2 and ck["batch"] > 0 and ck["iteration"] >= 42
    assert_resumes_identically(run, reference)


def test_kill_just_after_a_checkpoint(reference, tmp_path):
    run = tmp_path / "run"
    seen: list = []

    def after_fourth_checkpoint(r: Path) -> bool:
        c = checkpoint_id(r)
        if c is not None and (not seen or seen[-1] != c):
            seen.append(c)
        return len(seen) >= 4
    kill_when(run, after_fourth_checkpoint)
    assert_resumes_identically(run, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_kill_at_random_points_and_resume_again(reference, tmp_path, seed):
    """Kill at a random iteration, resume, kill the resumed run again, resume to the end."""
    rng = random.Random(seed)
    run = tmp_path / "run"
    first = rng.randrange(1, 60)
    kill_when(run, lambda r: iterations(r) >= first)
    second = rng.randrange(first, 90)
    p = ocdl("solve", "--resume", str(run), "--quiet")
    t0 = time.monotonic()
    while p.poll() is None and iterations(run) < second and time.monotonic() - t0 < 120:
        time.sleep(0.0005)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert_resumes_identically(run, reference)
