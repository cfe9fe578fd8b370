"""``ocdl evaluate`` and :mod:`ocdl.run.evaluation`: a run folder's trained network read back and
evaluated (against the run's own evaluations), BatchNorm statistics recomputed (against the
per-batch statistics computed by hand), errors, and the run folder left as it was."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from ocdl.api import evaluate, load_system, solve
from ocdl.cli import cli
from ocdl.errors import OcdlError
from ocdl.run.evaluation import batchnorm_stages, recalibrate_batchnorm
from tests.conftest import ROOT

SPEC = (ROOT / "tests" / "fixtures" / "specs" / "tiny-mnist-ternary.yaml").read_text()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    spec = root / "eval-net.yaml"
    spec.write_text(SPEC)
    solve(spec, "emsa-ternary", epochs=2, out=root / "run", device="cpu")
    return root / "run"


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_final_controls_reproduce_the_runs_last_evaluation(run_dir):
    before = _files(run_dir)
    ev = evaluate(run_dir, device="cpu")
    last = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()
            if json.loads(s)["type"] == "epoch"][-1]
    assert ev.controls == "final" and ev.split == "test" and ev.n == 2000
    assert ev.acc == pytest.approx(last["test_acc"], abs=1e-12)
    assert ev.loss == pytest.approx(last["test_loss"], rel=1e-9)
    assert ev.nonzero == pytest.approx(last["nonzero"], abs=1e-12)
    assert ev.dead == pytest.approx(last["dead"], abs=1e-12)
    assert ev.stages["fc1"]["units"] == 24 and ev.stages["fc2"]["units"] == 10
    assert ev.stages["fc1"]["size"] == 24 * 784
    assert ev.recalibrated is None
    assert evaluate(run_dir, controls="last", device="cpu").acc == ev.acc  # same epoch
    assert _files(run_dir) == before  # read only


def test_valid_and_train_splits(run_dir):
    valid = evaluate(run_dir, split="valid", device="cpu")
    train = evaluate(run_dir, split="train", device="cpu")
    assert valid.n == 1000 and train.n == 230  # the run's data.limit holds
    last = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()][-1]
    assert valid.acc == pytest.approx(last["valid_acc"], abs=1e-12)


def test_recalibrated_statistics_are_the_batch_weighted_means_of_the_batch_statistics(run_dir):
    system, feeders = load_system(run_dir, device="cpu")
    w1 = system.theta["fc1.weight"]
    # by hand: BatchNorm bn1 sees z = x W1ᵀ; its per-batch mean and unbiased variance
    sums_m, sums_v, n = 0, 0, 0
    for x, _ in feeders.train.epoch(0):
        z = x @ w1.T
        sums_m = sums_m + z.mean(0) * len(z)
        sums_v = sums_v + z.var(0, unbiased=True) * len(z)
        n += len(z)
    assert n == 230  # batches of 50, 50, 50, 50, 30: the short one weighs less
    used = recalibrate_batchnorm(system, feeders.train)
    assert used == 230
    bn1 = next(st for st in batchnorm_stages(system) if st.name == "bn1")
    torch.testing.assert_close(bn1.buffers["running_mean"], sums_m / n, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn1.buffers["running_var"], sums_v / n, rtol=1e-5, atol=1e-6)
    ev = evaluate(run_dir, recalibrate_bn=True, device="cpu")
    assert ev.recalibrated_on == 230 and 0 <= ev.recalibrated["acc"] <= 1
    assert ev.recalibrated["n"] == 2000


def test_training_augmentation_is_not_used_to_evaluate_or_recalibrate(tmp_path):
    spec = tmp_path / "img.yaml"
    spec.write_text(SPEC.replace("input: [784]", "input: [1, 28, 28]")
                    .replace("- {name: fc1", "- {name: flat, op: flatten}\n  - {name: fc1")
                    + "  augment: {crop: 2, flip: true}\n")
    run = tmp_path / "run"
    solve(spec, "emsa-ternary", epochs=1, out=run, device="cpu")
    _, feeders = load_system(run, device="cpu")
    assert not feeders.train.augment.active


def test_errors_say_what_and_how(run_dir, tmp_path):
    with pytest.raises(OcdlError, match="not a run folder"):
        evaluate(tmp_path, device="cpu")
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "controls.pt").unlink()
    assert evaluate(copy, device="cpu").controls == "last"  # auto: a stopped run
    with pytest.raises(OcdlError, match="has not finished.*--controls last"):
        evaluate(copy, controls="final", device="cpu")
    (copy / "best.pt").write_bytes(b"torn")
    with pytest.raises(OcdlError, match="best.pt is not a readable ocdl run checkpoint"):
        evaluate(copy, controls="best", device="cpu")
    with pytest.raises(OcdlError, match="split must be one of"):
        evaluate(run_dir, split="holdout", device="cpu")


def test_dead_units_are_counted_and_named_by_stage(run_dir, tmp_path):
    copy = tmp_path / "dead"
    shutil.copytree(run_dir, copy)
    state = torch.load(copy / "controls.pt", weights_only=True)
    fc1 = state["theta"]["fc1.weight"]
    fc1[[0, 5, 7]] = 0.0  # three dead units by hand (more if the run left some)
    fc1_dead = int(fc1.eq(0).all(dim=1).sum())
    torch.save(state, copy / "controls.pt")
    ev = evaluate(copy, device="cpu")
    assert ev.stages["fc1"]["dead"] == fc1_dead >= 3
    assert ev.stages["fc1"]["nonzero"] == int(fc1.count_nonzero())
    assert ev.dead == pytest.approx((fc1_dead + ev.stages["fc2"]["dead"]) / 34)
    text = ev.describe()
    assert f"dead units     {100 * ev.dead:.2f} % of 34 output units" in text
    assert f"fc1 {fc1_dead}/24" in text


def test_recalibrating_a_model_without_batchnorm_is_refused(tmp_path):
    spec = tmp_path / "nobn.yaml"
    spec.write_text(SPEC.replace("  - {name: bn1, op: batchnorm, eps: 1.0e-4}\n", "")
                    .replace("  - {name: bn2, op: batchnorm, eps: 1.0e-4}\n", ""))
    run = tmp_path / "run"
    solve(spec, "emsa-ternary", epochs=1, out=run, device="cpu")
    ev = evaluate(run, device="cpu")
    assert ev.acc is not None and not ev.batchnorm and "BatchNorm" not in ev.describe()
    with pytest.raises(OcdlError, match="no batchnorm stage.*leave out --recalibrate-bn"):
        evaluate(run, recalibrate_bn=True, device="cpu")


def test_cli(run_dir):
    r = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--device", "cpu",
                                 "--recalibrate-bn"])
    assert r.exit_code == 0, r.output
    assert "test           accuracy" in r.output and "recomputed on 230 clean" in r.output
    r = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--device", "cpu", "--json",
                                 "--controls", "best"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["controls"] == "best" and d["n"] == 2000
    r = CliRunner().invoke(cli, ["evaluate", str(run_dir / "nope"), "--device", "cpu"])
    assert r.exit_code == 2 and r.output.startswith("error: ") and "not a run folder" in r.output
