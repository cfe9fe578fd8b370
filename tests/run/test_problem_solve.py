"""`ocdl solve` on an equation-defined control problem: its initial states are the batch."""
import json

import pytest
from click.testing import CliRunner

from ocdl.cli import cli
from ocdl.models import model_path


def test_solve_lqr_reaches_the_riccati_cost(tmp_path):
    pytest.importorskip("sympy")
    out = tmp_path / "lqr"
    r = CliRunner().invoke(cli, ["solve", str(model_path("lqr-scalar")), "--epochs", "30",
                                 "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "solver emsa-ocp" in r.output and "objective J" in r.output
    assert "test accuracy" not in r.output
    epochs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line]
    # J* = 1.274917203 (casadi/IPOPT and the Riccati recursion; see tests/check); float32 run
    assert epochs[-1]["J"] == pytest.approx(1.274917203, rel=1e-5)
    assert epochs[-1]["test_acc"] is None
