"""tools/amp_error.py: bf16 autocast's error in M on a trained network, against float32."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ocdl.api import load_system, solve
from ocdl.models import model_path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from amp_error import amp_error  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("amp") / "run"
    solve(model_path("quickstart"), "emsa-ternary", epochs=1, out=out,
          overrides={"data.limit": 300, "run.device": "cpu"})
    return out


def test_errors_are_small_and_independent_from_batch_to_batch(run):
    system, feeders = load_system(run, device="cpu")
    batches = list(feeders.train)[:2]
    rows = amp_error(system, batches)
    weights = {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert weights < set(rows) and "bn1.weight" in rows and "bn1.bias" in rows  # BN's too
    for r in rows.values():
        assert 0 < r["per-batch"] < 0.2  # bf16 keeps 8 bits: errors of a few per cent
        assert 0 < r["e shrink"] <= 1 and 0 < r["M shrink"] <= 1 and r["bias/signal"] >= 0
    assert system.autocast is None  # left as it was


def test_with_one_batch_the_means_are_the_batch_and_float32_against_itself_is_exact(run):
    system, feeders = load_system(run, device="cpu")
    batch = next(iter(feeders.train))
    one = amp_error(system, [batch])
    for r in one.values():  # K = 1: the mean is the batch, nothing shrinks
        assert r["e shrink"] == pytest.approx(1.0) and r["M shrink"] == pytest.approx(1.0)
        assert r["bias/signal"] == pytest.approx(r["per-batch"])
    same = amp_error(system, [batch], None)  # float32 against float32
    assert all(r["per-batch"] == 0.0 for r in same.values())
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    cpu_tf32 = amp_error(system, [batch], "tf32")  # TF32 is a CUDA switch: no effect here
    assert all(r["per-batch"] == 0.0 for r in cpu_tf32.values())
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ValueError, match="precision must be one of"):
        amp_error(system, [batch], "fp8")


def test_script_prints_a_table_and_refuses_a_missing_run(run, tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "amp_error.py")]
    r = subprocess.run(cmd + [str(run), "--batches", "2", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| fc1.weight |" in r.stdout and "bias/signal" in r.stdout
    assert "bf16 autocast against float32 on cpu" in r.stdout
    r = subprocess.run(cmd + [str(run), "--batches", "1", "--precision", "tf32"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "TF32 against float32" in r.stdout, r.stderr
    r = subprocess.run(cmd + [str(tmp_path / "missing")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "not a run folder" in r.stderr and "Traceback" not in r.stderr
