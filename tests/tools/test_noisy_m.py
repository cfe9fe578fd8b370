"""tools/noisy_m.py: a recorded run again with Gaussian noise of a given size in every M."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ocdl.api import solve
from ocdl.models import model_path
from ocdl.system import System

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "run"))
from noisy_m import noisy_costates  # noqa: E402
from run_helpers import log_records  # noqa: E402

SET = {"data.limit": 300, "run.device": "cpu", "data.batch_size": 50}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy") / "A"
    solve(model_path("quickstart"), "emsa-ternary", epochs=1, out=out, overrides=SET)
    return out


def test_the_noise_has_the_asked_norm_and_is_gone_after(recorded):
    from ocdl.api import load_system
    system, feeders = load_system(recorded, device="cpu")
    x, y = next(iter(feeders.train))[:2]

    def M():
        return system.costates(system.forward(x, train=True, update_stats=False), y,
                               need_p=False).M
    clean = M()
    with noisy_costates(0.25):
        noisy = M()
    for n, m in clean.items():
        assert (noisy[n] - m).norm().item() == pytest.approx(0.25 * m.norm().item(), rel=1e-4)
    again = M()  # the plain method is back
    assert all(torch.equal(again[n], m) for n, m in clean.items())
    assert System.costates.__name__ == "costates" and System.costates.__module__ == "ocdl.system"


def test_rel_zero_is_the_recorded_run_and_noise_changes_it(recorded, tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "noisy_m.py"), "--like", str(recorded)]
    r = subprocess.run(cmd + ["--rel", "0", "--out", str(tmp_path / "zero")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert log_records(tmp_path / "zero") == log_records(recorded)
    r = subprocess.run(cmd + ["--rel", "0.5", "--out", str(tmp_path / "half")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert log_records(tmp_path / "half") != log_records(recorded)
    r = subprocess.run(cmd + ["--rel", "0.1", "--out", str(tmp_path / "x"), "--set", "nope.x=1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "has no setting 'nope.x'" in r.stderr, r.stderr


def test_scaled_noise_follows_each_entry_of_M(monkeypatch):
    """--scaled: the noise of an entry is proportional to its |M| (none where M = 0), with the
    same total norm r‖M‖."""
    from types import SimpleNamespace
    m0 = torch.tensor([[0.0, 1.0, -3.0], [0.0, 0.5, 2.0]])
    monkeypatch.setattr(System, "costates",
                        lambda self, states, y, **kw: SimpleNamespace(M={"w": m0.clone()}))
    with noisy_costates(0.1, scaled=True):
        m = System.costates(None, None, None).M["w"]
    e = m - m0
    assert e.norm().item() == pytest.approx(0.1 * m0.norm().item(), rel=1e-5)
    assert torch.equal(e[m0 == 0], torch.zeros(2))
    with noisy_costates(0.1):
        even = System.costates(None, None, None).M["w"] - m0
    assert (even[m0 == 0] != 0).all()  # the default noise reaches every entry
