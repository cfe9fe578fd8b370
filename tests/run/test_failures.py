"""Divergence, interrupted checkpoint writes and Ctrl-C leave a usable run folder."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ocdl.run.checkpoint as checkpoint
from ocdl.api import solve
from ocdl.errors import DivergenceError, OcdlError
from ocdl.run import RunInterrupted

from run_helpers import assert_same_state, load, log_records

SET = {"run.log_every": 4, "run.device": "cpu"}  # bit-identity is promised on the CPU


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("log_every", [4, 100])
def test_nan_stops_and_keeps_last_good_checkpoint(fake, tiny_model, tmp_path, log_every):
    # epoch 1 = iterations 1..10 (checkpointed); the loss is NaN from iteration 15 on
    # (epoch 2, batch 5); log_every=100 finds it only at the end of epoch 2
    with pytest.raises(DivergenceError) as ei:
        solve(tiny_model, "fake-nan@15", epochs=3, out=tmp_path / "r",
              overrides={"run.log_every": log_every})
    msg = str(ei.value)
    assert "\n" not in msg
    assert "loss became nan at epoch 2, iteration 5 of 10 (iteration 15 of the run)" in msg
    assert "last good checkpoint" in msg and "end of epoch 1" in msg
    ck = load(tmp_path / "r" / "last.pt")
    assert (ck["epoch"], ck["batch"], ck["iteration"]) == (2, 0, 10)
    assert torch.load(tmp_path / "r" / "best.pt", weights_only=True)["epoch"] == 2
    recs = log_records(tmp_path / "r")
    assert recs[-1]["event"] == "diverged" and recs[-1]["iter"] == 15
    assert recs[-2]["iter"] == 15 and recs[-2]["loss"] is None  # logged up to the bad one
    assert not any(r.get("type") == "epoch" and r["epoch"] == 2 for r in recs)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs"] == 1
    assert not (tmp_path / "r" / "controls.pt").exists()
    assert DivergenceError.exit_code != 0


def test_nan_before_any_checkpoint(fake, tiny_model, tmp_path):
    with pytest.raises(DivergenceError, match="no checkpoint was written yet"):
        solve(tiny_model, "fake-nan@1", epochs=1, out=tmp_path / "r", overrides=SET)
    assert not (tmp_path / "r" / "last.pt").exists()


def test_failed_replace_keeps_previous_checkpoint(fake, tiny_model, tmp_path, monkeypatch):
    """os.replace fails on the second checkpoint: last.pt stays the first, readable; no temp
    file is left; the user gets a one-line OcdlError."""
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        if str(dst).endswith("last.pt"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(OcdlError, match="could not write .*last.pt.*previous checkpoint is kept"):
        solve(tiny_model, "fake", epochs=3, out=tmp_path / "r", overrides=SET)
    ck = checkpoint.load_checkpoint(tmp_path / "r" / "last.pt")
    assert (ck["epoch"], ck["batch"]) == (2, 0)
    assert not list((tmp_path / "r").glob(".*tmp*"))


def test_save_raising_midway_keeps_previous_checkpoint(fake, tiny_model, tmp_path,
                                                       monkeypatch):
    real = torch.save
    calls = {"n": 0}

    def broken_save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise RuntimeError("killed while writing")
        return real(obj, f, *a, **k)

    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r", overrides=SET)
    before = digest(tmp_path / "r" / "last.pt")
    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    calls["n"] = 1
    with pytest.raises(RuntimeError, match="killed while writing"):
        solve(resume=tmp_path / "r", epochs=2)
    assert digest(tmp_path / "r" / "last.pt") == before
    assert not list((tmp_path / "r").glob(".*tmp*"))
    monkeypatch.setattr(checkpoint.torch, "save", real)
    res = solve(resume=tmp_path / "r", epochs=2)  # and the run goes on from there
    assert res.epochs == 2


SIGKILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import run_fakes; run_fakes.install()
    import torch
    import ocdl.run.checkpoint as ck
    real = torch.save
    n = [0]
    def slow_save(obj, f, *a, **k):
        n[0] += 1
        if n[0] == 2:  # second checkpoint: write half, then hang until killed
            f.write(b"PK\\x03\\x04 torn"); f.flush()
            open({marker!r}, "w").close()
            time.sleep(60)
        return real(obj, f, *a, **k)
    ck.torch.save = slow_save
    from ocdl.api import solve
    solve({model!r}, "fake", epochs=3, out={out!r})
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_leaves_previous_checkpoint(fake, tiny_model, tmp_path):
    marker, out = tmp_path / "saving", tmp_path / "r"
    script = SIGKILL_SCRIPT.format(tests=str(Path(__file__).parent), marker=str(marker),
                                   model=str(tiny_model), out=str(out))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.time() < deadline, "the run never reached its second checkpoint"
            time.sleep(0.05)
        assert list(out.glob(".last.pt.tmp-*"))  # the torn temporary file is there
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    ck = checkpoint.load_checkpoint(out / "last.pt")
    assert (ck["epoch"], ck["batch"]) == (2, 0)
    # resuming cleans the stale temp file and finishes the run
    res = solve(resume=out)
    assert res.epochs == 3
    assert not list(out.glob(".*tmp*"))


def test_keyboardinterrupt_between_steps_saves_position(fake, tiny_model, tmp_path,
                                                         monkeypatch):
    """A KeyboardInterrupt raised outside a step (here: while fetching a batch) is a consistent
    point: the position is saved and resuming reproduces the uninterrupted run."""
    solve(tiny_model, "fake", epochs=2, out=tmp_path / "full", overrides=SET)
    real_epoch = fake.FakeFeeder.epoch

    def epoch(self, e, start_batch=0):
        for b, item in enumerate(real_epoch(self, e, start_batch), start=start_batch):
            if self.shuffle and e == 2 and b == 6 and "feed" not in fake.FIRED:
                fake.FIRED.add("feed")
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(fake.FakeFeeder, "epoch", epoch)
    with pytest.raises(RunInterrupted, match="epoch 2, after batch 6 of 10") as ei:
        solve(tiny_model, "fake", epochs=2, out=tmp_path / "cut", overrides=SET)
    assert ei.value.exit_code == 130
    solve(resume=tmp_path / "cut")
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "cut" / "controls.pt"))
    assert log_records(tmp_path / "full") == log_records(tmp_path / "cut")


def test_sigint_handler_is_restored(fake, tiny_model, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r")
    assert signal.getsignal(signal.SIGINT) is before


def test_nan_in_evaluation_is_divergence(fake, tiny_model, tmp_path):
    with pytest.raises(DivergenceError, match="the valid loss became nan/inf at the evaluation "
                                              "after epoch 2; the last good checkpoint .*end of "
                                              "epoch 1"):
        solve(tiny_model, "fake-evalnan@2", epochs=3, out=tmp_path / "r", overrides=SET)
    assert load(tmp_path / "r" / "last.pt")["epoch"] == 2
