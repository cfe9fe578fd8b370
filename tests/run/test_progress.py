"""The run's progress π handed to the solvers' schedules (``lr_end``, ``alpha_end``)."""
import pytest
import torch

from ocdl.api import solve
from ocdl.models import model_path

from run_helpers import load

SET = {"run.log_every": 4, "run.device": "cpu"}


def test_progress_is_the_fraction_of_epochs_done(fake, tiny_model, tmp_path):
    res = solve(tiny_model, "fake", epochs=4, out=tmp_path / "r", overrides=SET)
    assert [h["progress"] for h in res.history] == [0.25, 0.5, 0.75, 1.0]
    # the solver got the same π as the log shows
    assert load(tmp_path / "r" / "last.pt")["solver_state"]["progress"] == 1.0


def test_under_a_time_limit_progress_is_the_larger_fraction(fake, tiny_model, tmp_path):
    # a generous limit: the epochs' fraction is the larger one
    free = solve(tiny_model, "fake", epochs=3, out=tmp_path / "free",
                 overrides={**SET, "run.time_limit": 3600})
    assert [h["progress"] for h in free.history] == pytest.approx([1 / 3, 2 / 3, 1.0])
    # a limit already passed after the first epoch: that epoch ends the run, π = 1
    cut = solve(tiny_model, "fake", epochs=4, out=tmp_path / "cut",
                overrides={**SET, "run.time_limit": 1e-9})
    assert [h["progress"] for h in cut.history] == [1.0]


def test_progress_follows_the_clock_when_time_is_the_larger_fraction(fake, tiny_model, tmp_path,
                                                                      monkeypatch):
    """A clock read as 40 s into a 100-s limit: after epoch 1 of 10 π = 0.4, not 0.1."""
    from ocdl.run.loop import Loop
    monkeypatch.setattr(Loop, "elapsed", lambda self: 40.0)
    res = solve(tiny_model, "fake", epochs=10, out=tmp_path / "r",
                overrides={**SET, "run.time_limit": 100})
    # the clock stands still at 40 s, so every epoch looks free of cost and all 10 run
    assert [h["progress"] for h in res.history][:3] == pytest.approx([0.4, 0.4, 0.4])
    assert res.history[-1]["progress"] == pytest.approx(1.0)
    assert res.history[5]["progress"] == pytest.approx(0.6)


def test_progress_reaches_the_solver_schedules(tmp_path):
    """A real run with ``alpha_end`` and ``lr_end``: after its last epoch (π = 1) the solver
    state holds 1 − α = (1 − α₀)·alpha_end and lr_scale = lr_end, whatever the number of
    epochs; and the controls equal those of the per-epoch decays alpha_end^(1/E), lr_end^(1/E)."""
    model = model_path("quickstart")
    ov = {**SET, "data.limit": 300, "alpha_end": 0.01, "lr_end": 0.25}
    solve(model, "emsa-ternary", epochs=2, out=tmp_path / "two", overrides=ov)
    st = load(tmp_path / "two" / "last.pt")["solver_state"]
    assert 1 - st["alpha"] == pytest.approx(1e-3 * 0.01)
    assert st["lr_scale"] == pytest.approx(0.25)
    three = solve(model, "emsa-ternary", epochs=3, out=tmp_path / "three", overrides=ov)
    st3 = load(tmp_path / "three" / "last.pt")["solver_state"]
    assert 1 - st3["alpha"] == pytest.approx(1e-3 * 0.01)
    assert [h["progress"] for h in three.history] == pytest.approx([1 / 3, 2 / 3, 1.0])
    # the same run with the per-epoch decays r^(1/E) ends with the same controls
    d = {**SET, "data.limit": 300, "alpha_decay": 0.01 ** (1 / 3), "lr_decay": 0.25 ** (1 / 3)}
    solve(model, "emsa-ternary", epochs=3, out=tmp_path / "decay", overrides=d)
    a = load(tmp_path / "three" / "controls.pt")["theta"]
    b = load(tmp_path / "decay" / "controls.pt")["theta"]
    for k in a:  # r^(e/3) and (r^(1/3))^e agree to rounding; no ternary entry flips on that
        assert torch.allclose(a[k], b[k], atol=1e-6), k
