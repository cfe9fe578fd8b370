"""The run's events for user callbacks (ocdl.run.events) and the TensorBoard writer."""
from __future__ import annotations

import csv
import json

import pytest

from ocdl.api import solve
from ocdl.errors import CallbackError

from run_helpers import log_records

SET = {"run.log_every": 2, "run.device": "cpu"}


def test_callbacks_get_every_event_in_order(fake, tiny_model, tmp_path):
    seen = []
    solve(tiny_model, "fake", epochs=2, out=tmp_path / "r", overrides=SET,
          callbacks=[seen.append])
    kinds = [e.kind for e in seen]
    assert set(kinds) == {"iterations", "evaluation", "epoch_end", "checkpoint"}
    ends = [e for e in seen if e.kind == "epoch_end"]
    logged = [r for r in log_records(tmp_path / "r", drop_time=False)
              if r.get("type") == "epoch"]
    assert [e.record for e in ends] == logged  # the epoch records, as written to log.jsonl
    for end in ends:  # per epoch: evaluation, then the record, then the checkpoint of that end
        i = seen.index(end)
        assert seen[i - 2].kind == "evaluation" and seen[i - 1].kind == "checkpoint"
        assert seen[i - 2].record["test_acc"] == end.record["test_acc"]
        assert seen[i - 1].record == {"path": str(tmp_path / "r" / "last.pt"),
                                      "best": seen[i - 1].record["best"],
                                      "epoch": end.epoch + 1, "batch": 0}
    iters = [r for e in seen if e.kind == "iterations" for r in e.records]
    assert [r["iter"] for r in iters] == list(range(1, len(iters) + 1))
    assert all(e.run_dir == tmp_path / "r" for e in seen)


def test_divergence_reaches_the_callbacks(fake, tiny_model, tmp_path):
    from ocdl.errors import DivergenceError
    seen = []
    with pytest.raises(DivergenceError):
        solve(tiny_model, "fake-nan@3", epochs=2, out=tmp_path / "r", overrides=SET,
              callbacks=[seen.append])
    div = [e for e in seen if e.kind == "divergence"]
    assert len(div) == 1 and div[0].record["iter"] == 3


def test_a_failing_callback_ends_the_run_with_a_clear_error_and_the_run_resumes(
        fake, tiny_model, tmp_path):
    def tracker(event):
        if event.kind == "epoch_end" and event.epoch == 2:
            raise OSError("disk full")
    with pytest.raises(CallbackError, match=r"callback .*tracker failed on the 'epoch_end' "
                                            r"event at epoch 2.*OSError: disk full.*--resume"):
        solve(tiny_model, "fake", epochs=3, out=tmp_path / "r", overrides=SET,
              callbacks=[tracker])
    done = solve(resume=tmp_path / "r")  # epoch 2 was checkpointed before the event
    assert [r["epoch"] for r in done.history] == [1, 2, 3]
    with pytest.raises(CallbackError, match="must be callable"):
        solve(tiny_model, "fake", epochs=1, out=tmp_path / "x", overrides=SET, callbacks=[3])


def test_a_csv_tracker_as_in_the_readme(fake, tiny_model, tmp_path):
    rows = tmp_path / "epochs.csv"

    def csv_writer(event):
        if event.kind == "epoch_end":
            new = not rows.exists()
            with rows.open("a", newline="") as f:
                w = csv.DictWriter(f, ["epoch", "loss", "test_acc"], extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(event.record)

    r = solve(tiny_model, "fake", epochs=3, out=tmp_path / "r", overrides=SET,
              callbacks=[csv_writer])
    got = list(csv.DictReader(rows.open()))
    assert [float(g["loss"]) for g in got] == pytest.approx([h["loss"] for h in r.history])


def test_tensorboard_scalars_are_written_and_read_back(fake, tiny_model, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    r = solve(tiny_model, "fake", epochs=3, out=tmp_path / "r",
              overrides={**SET, "run.tensorboard": True})
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"epoch/loss", "epoch/test_acc", "epoch/nonzero", "iter/loss"} <= set(tags)
    loss = acc.Scalars("epoch/loss")
    assert [e.step for e in loss] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([h["loss"] for h in r.history], rel=1e-6)
    test = acc.Scalars("epoch/test_acc")  # in percent, as printed
    assert [e.value for e in test] == pytest.approx([100 * h["test_acc"] for h in r.history],
                                                    rel=1e-6)
    its = acc.Scalars("iter/loss")
    assert [e.step for e in its] == list(range(1, len(its) + 1))
    assert len(its) == r.history[-1]["iters"]
    cfg = (tmp_path / "r" / "config.yaml").read_text()
    assert "tensorboard: true" in cfg


def test_tensorboard_is_validated_and_may_be_switched_on_when_resuming(fake, tiny_model,
                                                                       tmp_path):
    from ocdl.errors import ConfigError
    with pytest.raises(ConfigError, match="tensorboard must be true or false"):
        solve(tiny_model, "fake", epochs=1, out=tmp_path / "bad",
              overrides={**SET, "run.tensorboard": "yes please"})
    pytest.importorskip("tensorboard")
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "r", overrides=SET)
    solve(resume=tmp_path / "r", epochs=2, overrides={"run.tensorboard": True})
    assert any((tmp_path / "r" / "tensorboard").iterdir())
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["epochs"] == 2
