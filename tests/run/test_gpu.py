"""The loop on a CUDA device: no host sync per step from the loop, NaN found on the device,
resume (checked for bit-identity, which is promised only on the CPU)."""

import pytest
import torch

from ocdl.api import solve
from ocdl.errors import DivergenceError
from ocdl.models import model_path
from ocdl.run.metrics import MetricBuffer

from run_helpers import load, log_records

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
MODEL = model_path("quickstart")


def test_metric_buffer_does_not_sync_on_push():
    dev = torch.device("cuda")
    buf = MetricBuffer(dev)
    m = {"loss": torch.tensor(0.5, device=dev), "J": torch.tensor(0.6, device=dev),
         "flips/fc1": torch.tensor(0.01, device=dev), "rho": 0.25}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(20):
            buf.push(1, i, i + 1, m)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    res = buf.sync()
    assert len(res.records) == 20 and res.bad is None
    assert res.records[3]["loss"] == 0.5 and res.records[3]["rho"] == 0.25


def test_nan_on_cuda(fake, tiny_model, tmp_path):
    with pytest.raises(DivergenceError, match="epoch 2, iteration 5 of 10"):
        solve(tiny_model, "fake-nan@15", epochs=3, out=tmp_path / "r",
              overrides={"run.log_every": 100, "run.device": "cuda"})
    assert load(tmp_path / "r" / "last.pt")["epoch"] == 2


def test_cuda_run_and_resume(tmp_path):
    ov = {"data.limit": 2000, "run.log_every": 10, "run.device": "cuda"}
    full = solve(MODEL, "emsa-ternary", epochs=2, out=tmp_path / "full", overrides=ov)
    solve(MODEL, "emsa-ternary", epochs=1, out=tmp_path / "part", overrides=ov)
    res = solve(resume=tmp_path / "part", epochs=2)
    assert full.device.startswith("cuda") and res.epochs == 2
    a, b = load(tmp_path / "full" / "controls.pt"), load(tmp_path / "part" / "controls.pt")
    same = all(torch.equal(a["theta"][k], b["theta"][k]) for k in a["theta"])
    print(f"cuda resume bit-identical: {same}; final test acc {full.final_test_acc:.4f} vs "
          f"{res.final_test_acc:.4f}")
    assert [r["epoch"] for r in log_records(tmp_path / "part") if r["type"] == "epoch"] == [1, 2]
    assert abs(full.final_test_acc - res.final_test_acc) < 0.02
