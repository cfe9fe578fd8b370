"""Solver state is a checkpoint: torch.save / torch.load it and the run continues identically."""
from __future__ import annotations

import io

import pytest
import torch

from ocdl.solvers import make_solver

from conftest import mlp_spec, teacher_data

CASES = [("emsa-ternary", "ternary", {"alpha": 0.9, "lr_decay": 0.5}), ("emsa-binary", "binary", {}),
         ("emsa-ternary", "ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2}),
         ("emsa", "real", {"adaptive_rho": True}), ("msa", "ternary", {}),
         ("adam", "real", {"lr_decay": 0.5}), ("sgd", "real", {}),
         ("binaryconnect", "binary", {"stochastic": True, "lr_decay": 0.5}),
         ("twn", "ternary", {"lr_decay": 0.5}),
         ("twn", "ternary", {"optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-4}),
         ("bop", "binary", {"lr_decay": 0.5})]


@pytest.mark.parametrize("solver,kind,over", CASES)
def test_resume_from_a_checkpoint(solver, kind, over):
    spec = mlp_spec(kind, l1=1e-4 if kind == "ternary" else 0.0,
                    act="tanh" if kind == "real" else "relu")
    x, y = teacher_data(spec, 32, dtype=torch.float32)
    a = spec.compile(seed=0)
    s = make_solver(solver, over)
    st = s.init(a)
    for _ in range(3):
        st, _ = s.step(a, st, x, y)
    st = s.end_epoch(a, st, 0)
    buf = io.BytesIO()
    torch.save({"system": a.state_dict(), "solver": st}, buf)
    for _ in range(2):
        st, _ = s.step(a, st, x, y)

    buf.seek(0)
    ck = torch.load(buf)  # weights_only: the state is plain tensors, numbers, lists and dicts
    b = spec.compile(seed=5)
    s2 = make_solver(solver, over)
    s2.init(b)  # as `ocdl solve --resume` does: init (which may write θ), then the saved state
    b.load_state_dict(ck["system"])
    st2 = ck["solver"]
    for _ in range(2):
        st2, _ = s2.step(b, st2, x, y)
    for k in a.theta:
        assert torch.equal(a.theta[k], b.theta[k]), k
