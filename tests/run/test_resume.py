"""Resuming a run continues it bit-identically on the CPU (controls, solver state, log)."""
import json

import pytest

from ocdl.api import solve
from ocdl.models import model_path
from ocdl.run import RunInterrupted

from run_helpers import assert_same_state, assert_same_tree, load, log_records

SET = {"run.log_every": 4, "run.device": "cpu"}  # bit-identity is promised on the CPU


def test_two_epochs_equal_one_plus_resume(fake, tiny_model, tmp_path):
    full = solve(tiny_model, "fake", epochs=2, out=tmp_path / "full", overrides=SET)
    part = solve(tiny_model, "fake", epochs=1, out=tmp_path / "part", overrides=SET)
    assert part.epochs == 1
    res = solve(resume=tmp_path / "part", epochs=2)
    assert res.epochs == 2 and res.status == "completed"
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "part" / "controls.pt"))
    for k, v in full.system.theta.items():  # the returned System too
        assert v.equal(res.system.theta[k])
    a, b = load(tmp_path / "full" / "last.pt"), load(tmp_path / "part" / "last.pt")
    assert_same_tree(a["solver_state"], b["solver_state"])
    # the run's progress π was planned against 1 epoch, then 2 (the fake solver's state
    # ignores it; lr_end / alpha_end schedules would follow it)
    assert [h["progress"] for h in full.history] == [0.5, 1.0]
    assert [h["progress"] for h in res.history] == [1.0, 1.0]
    assert log_records(tmp_path / "full", drop=("progress",)) == \
        log_records(tmp_path / "part", drop=("progress",))
    assert [h["test_acc"] for h in full.history] == [h["test_acc"] for h in res.history]
    assert res.final_test_acc == full.final_test_acc
    assert res.wall_time >= part.wall_time
    # training time = wall time less the evaluations, accumulated across the resume
    h = res.history
    assert h[0]["train_time"] == pytest.approx(h[0]["epoch_time"] - h[0]["eval_time"])
    assert h[1]["train_time"] == pytest.approx(h[0]["train_time"] + h[1]["epoch_time"]
                                               - h[1]["eval_time"])
    assert 0 < res.train_time <= h[1]["time"] and res.summary()["train_time"] == res.train_time


def test_sigint_mid_epoch_then_resume_is_identical(fake, tiny_model, tmp_path):
    full = solve(tiny_model, "fake", epochs=3, out=tmp_path / "full", overrides=SET)
    # SIGINT arrives during iteration 13 (epoch 2, batch index 2): the step finishes, then stop
    with pytest.raises(RunInterrupted) as ei:
        solve(tiny_model, "fake-sigint@13", epochs=3, out=tmp_path / "cut", overrides=SET)
    msg = str(ei.value)
    assert "epoch 2, after batch 3 of 10" in msg and f"--resume {tmp_path / 'cut'}" in msg
    ck = load(tmp_path / "cut" / "last.pt")
    assert (ck["epoch"], ck["batch"], ck["iteration"]) == (2, 3, 13)
    summary = (tmp_path / "cut" / "summary.json").read_text()
    assert '"status": "interrupted"' in summary
    res = solve(resume=tmp_path / "cut")
    assert res.epochs == 3
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "cut" / "controls.pt"))
    assert log_records(tmp_path / "full") == log_records(tmp_path / "cut")
    assert full.history[-1]["loss"] == res.history[-1]["loss"]


def test_keyboardinterrupt_inside_step_keeps_mid_epoch_checkpoint(fake, tiny_model, tmp_path):
    """A KeyboardInterrupt raised inside a solver step (θ half updated) must not be saved: the
    last checkpoint (here the mid-epoch one of iteration 14, from checkpoint_every) is kept and
    resuming from it gives the uninterrupted run."""
    ov = {**SET, "run.checkpoint_every": 7}
    solve(tiny_model, "fake", epochs=2, out=tmp_path / "full", overrides=ov)
    with pytest.raises(RunInterrupted) as ei:
        solve(tiny_model, "fake-kbi@16", epochs=2, out=tmp_path / "cut", overrides=ov)
    assert "epoch 2, batch 4) is kept" in str(ei.value)
    ck = load(tmp_path / "cut" / "last.pt")
    assert (ck["epoch"], ck["batch"], ck["iteration"]) == (2, 4, 14)
    assert not (tmp_path / "cut" / "controls.pt").exists()
    solve(resume=tmp_path / "cut")
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "cut" / "controls.pt"))
    assert log_records(tmp_path / "full") == log_records(tmp_path / "cut")


def test_resume_of_finished_run_with_same_epochs_does_nothing(fake, tiny_model, tmp_path):
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r", overrides=SET)
    before = log_records(tmp_path / "r")
    res = solve(resume=tmp_path / "r")
    assert res.epochs == 1 and log_records(tmp_path / "r") == before


def test_resume_refuses_new_settings(fake, tiny_model, tmp_path):
    from ocdl.errors import OcdlError
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r")
    with pytest.raises(OcdlError, match="keeps its solver"):
        solve(resume=tmp_path / "r", overrides={"lr": 1.0})
    with pytest.raises(OcdlError, match="no checkpoint"):
        (tmp_path / "empty").mkdir()
        solve(resume=tmp_path / "empty")


def test_existing_run_folder_is_not_overwritten(fake, tiny_model, tmp_path):
    from ocdl.errors import OcdlError
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r")
    with pytest.raises(OcdlError, match="already holds a run"):
        solve(tiny_model, "fake", epochs=1, out=tmp_path / "r")


def _real_available() -> bool:
    try:
        from ocdl.data.load import embedded_path
        from ocdl.solvers import make_solver  # noqa: F401
        return embedded_path("mnist-subset").is_file()
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _real_available(), reason="real solvers or embedded data missing")
@pytest.mark.parametrize("solver", ["emsa-ternary", "twn"])
def test_real_solver_resume_is_bit_identical(solver, tmp_path):
    model = model_path("quickstart")
    ov = {"data.limit": 600, "run.log_every": 5, "run.device": "cpu"}
    solve(model, solver, epochs=2, out=tmp_path / "full", overrides=ov)
    solve(model, solver, epochs=1, out=tmp_path / "part", overrides=ov)
    solve(resume=tmp_path / "part", epochs=2)
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "part" / "controls.pt"))
    assert_same_tree(load(tmp_path / "full" / "last.pt")["solver_state"],
                     load(tmp_path / "part" / "last.pt")["solver_state"])
    # all but π, planned against 1 epoch before the resume (these solvers decay per epoch)
    assert log_records(tmp_path / "full", drop=("progress",)) == \
        log_records(tmp_path / "part", drop=("progress",))


def test_eval_every_skips_evaluations_but_not_the_last(fake, tiny_model, tmp_path):
    every = solve(tiny_model, "fake", epochs=3, out=tmp_path / "e1", overrides=SET)
    sparse = solve(tiny_model, "fake", epochs=3, out=tmp_path / "e2",
                   overrides={**SET, "run.eval_every": 2})
    h = sparse.history
    assert "test_acc" not in h[0] and "valid_acc" not in h[0]        # epoch 1: skipped
    assert [r["test_acc"] for r in h[1:]] == [r["test_acc"] for r in every.history[1:]]
    assert sparse.final_test_acc == every.final_test_acc              # epoch 3: the last
    assert sparse.best_epoch in (2, 3)
    # the training itself is unchanged: same controls as the run evaluated every epoch
    assert_same_state(load(tmp_path / "e1" / "controls.pt"), load(tmp_path / "e2" / "controls.pt"))


def test_time_limit_ends_with_an_evaluated_epoch(fake, tiny_model, tmp_path):
    # a limit no epoch fits in: epoch 1 is the last, evaluated although eval_every skips it
    cut = solve(tiny_model, "fake", epochs=4, out=tmp_path / "cut",
                overrides={**SET, "run.eval_every": 3, "run.time_limit": 1e-9})
    assert cut.status == "completed" and len(cut.history) == 1
    assert cut.final_test_acc is not None and "test_acc" in cut.history[0]
    events = [r for r in log_records(tmp_path / "cut") if r.get("event") == "time_limit"]
    assert [e["epoch"] for e in events] == [1]
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["stopped_by_time_limit"]
    # the controls are those of a one-epoch run
    one = solve(tiny_model, "fake", epochs=1, out=tmp_path / "one", overrides=SET)
    assert_same_state(load(tmp_path / "one" / "controls.pt"),
                      load(tmp_path / "cut" / "controls.pt"))
    # a generous limit changes nothing
    free = solve(tiny_model, "fake", epochs=3, out=tmp_path / "free",
                 overrides={**SET, "run.time_limit": 3600})
    assert len(free.history) == 3
    assert not json.loads((tmp_path / "free" / "summary.json").read_text())["stopped_by_time_limit"]
    assert not [r for r in log_records(tmp_path / "free") if r.get("event") == "time_limit"]


def test_time_limit_is_validated():
    from ocdl.errors import ConfigError
    from ocdl.run.options import run_options
    assert run_options(settings={"time_limit": 600}, device="cpu").time_limit == 600.0
    for bad in (-1, "10m", True):
        with pytest.raises(ConfigError, match="time_limit must be a number of seconds"):
            run_options(settings={"time_limit": bad}, device="cpu")


def test_a_run_ended_by_its_time_limit_goes_on_with_a_new_one(fake, tiny_model, tmp_path):
    from ocdl.errors import OcdlError
    solve(tiny_model, "fake", epochs=3, out=tmp_path / "full", overrides=SET)
    solve(tiny_model, "fake", epochs=3, out=tmp_path / "cut",
          overrides={**SET, "run.time_limit": 1e-9})                  # ends after epoch 1
    with pytest.raises(OcdlError, match=r"not run\.eval_every"):
        solve(resume=tmp_path / "cut", overrides={"run.eval_every": 2})
    more = solve(resume=tmp_path / "cut", overrides={"run.time_limit": 0})
    assert len(more.history) == 3 and more.config["run"]["time_limit"] == 0
    # the training is that of the uninterrupted run
    assert_same_state(load(tmp_path / "full" / "controls.pt"),
                      load(tmp_path / "cut" / "controls.pt"))
