"""``nonzero_by_stage``: non-zero fractions and dead output units, against hand counts."""
from __future__ import annotations

import pytest
import torch

from ocdl.run.metrics import nonzero_by_stage
from ocdl.modelspec import loads_spec

SPEC = """
ocdl: 1
name: test-dead-units
input: [2, 4, 4]
stages:
  - {name: conv, op: conv2d, channels: 3, kernel: 3, padding: [1, 1], bias: false, control: ternary}
  - {name: bn, op: batchnorm, eps: 1.0e-4}
  - {name: flat, op: flatten}
  - {name: fc1, op: dense, units: 5, bias: true, control: ternary}
  - {name: fc2, op: dense, units: 2, bias: false}
cost:
  terminal: squared_hinge
"""


def test_nonzero_fractions_and_dead_units_are_counted_by_hand():
    system = loads_spec(SPEC).compile(seed=0)
    conv = torch.zeros(3, 2, 3, 3)
    conv[0, 1, 2, 2] = 1.0          # unit 0: one entry; unit 1: dead; unit 2: three entries
    conv[2, 0, 0, 0] = -1.0
    conv[2, 0, 1, 1] = 1.0
    conv[2, 1, 0, 2] = -1.0
    fc1 = torch.ones(5, 48)
    fc1[1] = 0.0                    # two dead units of five (the bias is real: not counted)
    fc1[4] = 0.0
    with torch.no_grad():
        system.theta["conv.weight"].copy_(conv)
        system.theta["fc1.weight"].copy_(fc1)
        system.theta["fc1.bias"].fill_(1.0)
    out = nonzero_by_stage(system)
    assert out["nonzero/conv"] == pytest.approx(4 / 54)
    assert out["nonzero/fc1"] == pytest.approx(3 / 5)
    assert out["nonzero"] == pytest.approx((4 + 3 * 48) / (54 + 5 * 48))
    assert out["dead/conv"] == pytest.approx(1 / 3)
    assert out["dead/fc1"] == pytest.approx(2 / 5)
    assert out["dead"] == pytest.approx(3 / 8)
    assert "nonzero/fc2" not in out and "dead/fc2" not in out  # a real control: not counted


def test_binary_weights_have_no_dead_unit_count():
    system = loads_spec(SPEC.replace("control: ternary", "control: binary")).compile(seed=0)
    out = nonzero_by_stage(system)
    assert out["nonzero"] == 1.0 and not any(k.startswith("dead") for k in out)


def test_real_controls_only_give_fractions_without_dead_units():
    text = SPEC.replace(", control: ternary", "")
    system = loads_spec(text).compile(seed=0)
    out = nonzero_by_stage(system)
    assert 0.9 < out["nonzero"] < 1.0  # BatchNorm's β starts at 0
    assert not any(k.startswith("dead") for k in out)


def test_the_dead_units_plot_is_written_only_for_runs_that_counted_them(tmp_path):
    from ocdl.run.plots import write_compare_plots
    old = [{"epoch": e, "loss": 1.0 / e, "test_acc": 0.5, "nonzero": 0.1, "train_time": e}
           for e in (1, 2)]
    new = [dict(r, dead=0.1 * r["epoch"]) for r in old]
    names = {p.name for p in write_compare_plots({"a": [old]}, tmp_path / "old")}
    assert "dead_units_vs_epoch.png" not in names and "sparsity_vs_epoch.png" in names
    files = write_compare_plots({"a": [old], "b": [new]}, tmp_path / "new")
    dead = tmp_path / "new" / "dead_units_vs_epoch.png"
    assert dead in files and dead.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_matrix_weights_in_one_stage_are_counted_together():
    from types import SimpleNamespace

    from ocdl.run.metrics import discrete_counts

    def control(name, shape, discrete=True):
        return SimpleNamespace(name=name, stage="s", shape=shape, numel=int(torch.Size(shape)
                               .numel()), has_units=True,
                               cset=SimpleNamespace(discrete=discrete, values=(-1.0, 0.0, 1.0)))
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]])  # one dead unit of three
    b = torch.zeros(2, 3, 1)                                   # two of two
    system = SimpleNamespace(controls=[control("a", (3, 2)), control("b", (2, 3, 1))],
                             theta={"a": a, "b": b})
    s = discrete_counts(system)["s"]
    assert (s.nonzero, s.size, s.dead, s.units) == (2, 12, 3, 5)
    out = nonzero_by_stage(system)
    assert out["dead/s"] == pytest.approx(3 / 5) and out["dead"] == pytest.approx(3 / 5)
    assert out["nonzero/s"] == pytest.approx(2 / 12)
