"""CUDA checks (``pytest -m gpu``): no host synchronisation inside a step, the accelerator form
of the fused update gives the CPU form's numbers, and a graphed update the eager one's."""
from __future__ import annotations

import pytest
import torch

from ocdl.solvers import make_solver

from conftest import conv_net, mlp_spec, teacher_data

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CASES = [("binary", "emsa-binary", {}), ("ternary", "emsa-ternary", {}), ("ternary", "msa", {}),
         ("binary", "binaryconnect", {}), ("binary", "bop", {}), ("ternary", "twn", {}),
         ("real", "adam", {}), ("ternary", "emsa-ternary", {"adaptive_rho": True}),
         ("ternary", "emsa-ternary", {"cuda_graph": True}),
         ("ternary", "emsa-ternary", {"nonzero_target": 0.3}),
         ("ternary", "emsa-ternary", {"cuda_graph": True, "nonzero_target": 0.3}),
         ("ternary", "emsa-ternary", {"cuda_graph": "step", "nonzero_target": 0.3}),
         ("binary", "emsa-binary", {"cuda_graph": "step"}),
         ("binary", "binaryconnect", {"cuda_graph": "step"}),
         ("binary", "bop", {"cuda_graph": "step"}), ("ternary", "twn", {"cuda_graph": "step"}),
         ("ternary", "emsa-ternary", {"keep_units": True}),
         ("ternary", "emsa-ternary", {"cuda_graph": "step", "nonzero_target": 0.3,
                                      "keep_units": True})]


def _setup(kind, device, dtype=torch.float32, n=64):
    spec = mlp_spec(kind, n_in=32, hidden=64, n_out=10, l1=1e-4 if kind == "ternary" else 0.0)
    x, y = teacher_data(spec, n, dtype=dtype)
    return spec.compile(device=device, dtype=dtype, seed=0), x.to(device), y.to(device)


@pytest.mark.parametrize("kind,solver,over", CASES)
def test_step_does_not_synchronise(kind, solver, over):
    system, x, y = _setup(kind, "cuda")
    s = make_solver(solver, over)
    st = s.init(system)
    for _ in range(3):  # warm-up (and, with cuda_graph, the capture)
        st, _ = s.step(system, st, x, y)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        st, m = s.step(system, st, x, y)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert system.check_sets() == []
    if over.get("cuda_graph"):  # captured once, then replayed
        assert s.execution.graph.captures == 1 and s.execution.graph.graph is not None
    assert all(v.device.type == "cuda" for v in m.values())


@pytest.mark.parametrize("kind,solver", [("ternary", "emsa-ternary"), ("binary", "emsa-binary"),
                                         ("ternary", "msa")])
def test_cuda_matches_cpu(kind, solver):
    res = []
    for dev in ("cpu", "cuda"):
        system, x, y = _setup(kind, dev, torch.float64)
        s = make_solver(solver)
        st = s.init(system)
        for _ in range(4):
            st, m = s.step(system, st, x, y)
        res.append(({k: v.detach().cpu() for k, v in system.theta.items()},
                    {k: float(v) for k, v in m.items()}))
    (a, ma), (b, mb) = res
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-9), k
    for k in ma:
        assert ma[k] == pytest.approx(mb[k], rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("kind,solver,over", [
    ("ternary", "emsa-ternary", {}), ("binary", "emsa-binary", {}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "alpha_batch_size": 16})])
def test_graphed_update_matches_eager(kind, solver, over):
    """Six steps, graphed against eager: batches of 32 samples except a short one of 20 at step
    2 (with alpha_batch_size, α^(S/B₀) changes: recapture, and again at step 3), and a new α
    after step 3 (recapture)."""
    res = []
    for graph in (False, True):
        system, x, y = _setup(kind, "cuda", torch.float64)
        s = make_solver(solver, {"cuda_graph": graph, **over})
        st = s.init(system)
        ms = []
        for i in range(6):
            n = 20 if i == 2 else 32
            st, m = s.step(system, st, x[i % 2::2][:n], y[i % 2::2][:n])
            ms.append({k: float(v) for k, v in m.items()})
            if i == 3:
                st = s.end_epoch(system, st, 0)  # new α: recapture
        if graph:
            assert s.execution.graph.captures >= 2, s.execution.graph.captures
        res.append(({k: v.detach().cpu() for k, v in system.theta.items()}, ms))
    (a, ma), (b, mb) = res
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for u, v in zip(ma, mb):
        assert u.keys() == v.keys()
        for k in u:
            assert u[k] == pytest.approx(v[k], rel=1e-12, abs=1e-15), k


@pytest.mark.parametrize("kind,solver,over", [
    ("ternary", "emsa-ternary", {}), ("binary", "emsa-binary", {}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2,
                                 "nonzero_start": 0.5}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2,
                                 "nonzero_start": 0.25, "nonzero_end": 0.75}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2,
                                 "nonzero_floor": 0.25}),
    ("ternary", "emsa-ternary", {"nonzero_target": 0.002, "nonzero_rate": 1.0,
                                 "keep_units": True}),
    ("binary", "binaryconnect", {}), ("binary", "bop", {"gamma": 1e-2}), ("ternary", "twn", {})])
def test_graphed_step_matches_eager(kind, solver, over, monkeypatch):
    """cuda_graph: step (forward, costates and update captured together) against the eager step
    on a small conv net with BatchNorm, eight steps in float64 with deterministic cuDNN: batches
    of 24 except short ones of 16 at steps 2 and 5, and an epoch's end after step 4 (E-MSA: a
    new α; with nonzero_start = 0.5 the λ scale's ascent starts there; with nonzero_end the
    annealed target moves there, in place). Step 0 warms up
    (eagerly), 1 captures, 2 warms up the short shape, 3 and 4 replay step 1's graph, 5 and 6
    capture (short, then full batch again), 7 replays. Same controls
    and running statistics, same metrics (to rounding: cuBLAS runs on other streams when
    graphed)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    m = conv_net(kind)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (48,), generator=g)
    res = []
    for graph in (False, "step"):
        system = m.compile(device="cuda", dtype=torch.float64, seed=0)
        s = make_solver(solver, {"cuda_graph": graph, **over})
        st = s.init(system)
        ms = []
        for i in range(8):
            n = 16 if i in (2, 5) else 24
            xb, yb = x[i % 2::2][:n].cuda(), y[i % 2::2][:n].cuda()
            st, met = s.step(system, st, xb, yb)
            ms.append({k: float(v) for k, v in met.items()})
            if i == 4:  # new α (and with nonzero_start the λ scale starts moving): recapture
                st = s.end_epoch(system, st, 0, progress=0.5)
        if graph:
            assert s.execution.graph.captures == 3, s.execution.graph.captures
        sd = system.state_dict()
        res.append((sd["theta"], sd["buffers"], ms))
    (ta, ba, ma), (tb, bb, mb) = res
    for k in ta:  # the ternary / binary weights exactly, BatchNorm's scale and shift to rounding
        assert torch.allclose(ta[k], tb[k], rtol=1e-9, atol=1e-12), k
    for st_name in ba:
        for k in ba[st_name]:
            assert torch.allclose(ba[st_name][k], bb[st_name][k], rtol=1e-9, atol=1e-12), \
                (st_name, k)
    for u, v in zip(ma, mb):
        assert u.keys() == v.keys()
        for k in u:
            assert u[k] == pytest.approx(v[k], rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("solver", ["emsa", "adam", "sgd"])
def test_one_channel_conv_net_trains_on_cuda_as_on_cpu(solver):
    """Real conv weights updated from torch.autograd.grad (E-MSA's augmented inner Adam steps)
    or from the costates: behind a one-channel input cuDNN may return channels-last weight
    gradients, which torch's fused Adam refused on CUDA before ocdl.solvers.first_order.like_params.
    float64, so CPU and CUDA agree to rounding."""
    from ocdl import Model
    m = Model("one-channel-res", input=(1, 8, 8))
    m.conv2d(4, 3, padding=1); m.relu()
    with m.residual(h=0.5):
        m.conv2d(4, 3, padding=1); m.batchnorm(); m.relu(); m.conv2d(4, 3, padding=1)
    m.avgpool(4); m.flatten(); m.dense(3); m.terminal("cross_entropy")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    res = []
    for dev in ("cpu", "cuda"):
        system = m.compile(device=dev, dtype=torch.float64, seed=0)
        s = make_solver(solver)
        st = s.init(system)
        for _ in range(3):
            st, met = s.step(system, st, x.to(dev), y.to(dev))
        res.append(({k: v.detach().cpu() for k, v in system.theta.items()}, float(met["loss"])))
    (a, la), (b, lb) = res
    assert la == pytest.approx(lb, rel=1e-9)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-9), k
