"""GraphedUpdate's failure path and the execution strategies' dispatch, on the CPU with
torch.cuda's graph API replaced by stand-ins (the captures themselves run in ``pytest -m gpu``,
tests/solvers/test_gpu.py)."""
from __future__ import annotations

import contextlib

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers.cuda_graphs import GraphedUpdate


class _Stream:
    def wait_stream(self, other) -> None:
        pass


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's streams and graphs as no-ops; ``torch.cuda.graph`` raises on entry, as a
    capture that meets a host synchronisation does."""
    calls = []

    @contextlib.contextmanager
    def failing_graph(g, **kw):
        calls.append(kw)
        raise RuntimeError("operation not permitted when stream is capturing")
        yield  # pragma: no cover

    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", failing_graph)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: None)
    return calls


def test_a_failed_capture_raises_and_names_the_setting(fake_cuda):
    g = GraphedUpdate("cuda_graph to false (--set cuda_graph=false)")
    ran = []

    def fn(inp):
        ran.append(1)
        return {"s": inp["x"].sum()}
    x = {"x": torch.ones(3)}
    out = g(fn, "k", x, warm_key="shape")  # first call: the eager warm-up
    assert float(out["s"]) == 3 and ran == [1] and g.captures == 0
    with pytest.raises(SolverError, match=r"CUDA graph capture of the solver's step failed "
                                          r"\(operation not permitted.*set cuda_graph to false"):
        g(fn, "k", x, warm_key="shape")
    assert fake_cuda == [{"stream": g.stream, "capture_error_mode": "thread_local"}]
    assert g.graph is None and g.captures == 0
    out = g(fn, "k", {"x": torch.ones(5)}, warm_key="other shape")  # a new shape warms up first
    assert float(out["s"]) == 5 and len(ran) == 2


def test_capture_inside_an_autocast_with_its_cache_on_is_refused(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda device_type=None: True)
    g = GraphedUpdate()
    g.warmed.add(None)
    with pytest.raises(SolverError, match="cache_enabled=False.*set cuda_graph: false"):
        g(lambda inp: {"s": inp["x"].sum()}, "k", {"x": torch.ones(2)})
    assert fake_cuda == []  # refused before any capture began


def test_addresses_walk_nested_state_in_a_fixed_order():
    from ocdl.solvers.cuda_graphs import addresses
    a, b, c = torch.zeros(2), torch.zeros(3), torch.zeros(1)
    state = {"m": {"w2": b, "w1": a}, "rho": c, "iteration": 7, "list": [a, (b,)]}
    # keys sorted: "iteration" (no tensor), "list" (a, b), "m" (w1: a, w2: b), "rho" (c)
    assert addresses(state) == tuple(t.data_ptr() for t in (a, b, a, b, c))
    assert addresses({"w": a}, state)[0] == a.data_ptr()
    moved = {**state, "rho": c.clone()}  # a reloaded tensor moves: a new key
    assert addresses(moved) != addresses(state)


def test_kernel_choice_follows_the_batch_shape_and_the_systems_forward_settings():
    from conftest import mlp_spec
    from ocdl.solvers.cuda_graphs import kernel_choice
    system = mlp_spec("binary").compile()
    x, y = torch.zeros(8, 8), torch.zeros(8, dtype=torch.long)
    k = kernel_choice(system, (x, y))
    assert kernel_choice(system, (x[:5], y[:5])) != k
    system.autocast = torch.bfloat16
    assert kernel_choice(system, (x, y)) != k


class _CudaDevice:
    type = "cuda"


class _OnCuda:
    device = _CudaDevice()


def test_execution_picks_the_strategy_on_cuda_and_none_on_the_cpu(monkeypatch):
    """Execution.run: ``step`` goes through graphed_step keyed by the scalars, ``true`` /
    ``update`` ask the body for a graphed update, false runs it eagerly; on a CPU all run
    eagerly. The graph's error message names the setting to change."""
    from ocdl.solvers import cuda_graphs
    from ocdl.solvers.cuda_graphs import Execution

    calls = []
    monkeypatch.setattr(cuda_graphs, "graphed_step",
                        lambda graph, system, state, x, y, body, scalars:
                        calls.append(("graphed", scalars)) or body(x, y))

    def body(x, y, graph_update):
        calls.append(("body", graph_update))
        return {}

    for mode, expect in (("step", [("graphed", (0.5,)), ("body", False)]),
                         (True, [("body", True)]), ("update", [("body", True)]),
                         (False, [("body", False)])):
        calls.clear()
        Execution({"cuda_graph": mode}).run(_OnCuda(), {}, 1, 2, body, lambda: (0.5,))
        assert calls == expect, mode
        calls.clear()
        Execution({"cuda_graph": mode}).run(mlp_system(), {}, 1, 2, body, lambda: (0.5,))
        assert calls == [("body", False)], mode
    assert Execution({"cuda_graph": "step"}).graph.what.startswith("cuda_graph to update")
    assert Execution({"cuda_graph": "step"}, (False, "step")).graph.what == \
        "cuda_graph to false (--set cuda_graph=false)"


def mlp_system():
    from conftest import mlp_spec
    return mlp_spec("ternary").compile()


@pytest.mark.parametrize("preset,kind", [("emsa-ternary", "ternary"), ("emsa-binary", "binary")])
def test_emsa_graphed_update_path_gives_the_eager_numbers(monkeypatch, preset, kind):
    """E-MSA's graphed-update branch (cuda_graph: true on CUDA), run on the CPU with the replay
    replaced by a plain call: the same θ and metrics as the eager step, and a key made of the
    baked-in scalars and the addresses of θ and the state."""
    from conftest import mlp_spec, teacher_data

    from ocdl.solvers import make_solver
    from ocdl.solvers.cuda_graphs import Execution

    spec = mlp_spec(kind, l1=1e-4 if kind == "ternary" else 0.0)
    x, y = teacher_data(spec, 32)
    runs, keys = [], []
    for graphed in (False, True):
        if graphed:
            monkeypatch.setattr(Execution, "run", lambda self, system, state, xb, yb, body,
                                scalars: body(xb, yb, True))
            monkeypatch.setattr(Execution, "update", lambda self, fn, key, inputs:
                                keys.append(key) or fn(inputs))
        system = spec.compile(dtype=torch.float64, seed=0)
        s = make_solver(preset, {"nonzero_target": 0.3} if kind == "ternary" else {})
        st = s.init(system)
        for _ in range(3):
            st, m = s.step(system, st, x, y)
        runs.append((system.theta["fc1.weight"].clone(), {k: float(v) for k, v in m.items()}))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert len(keys) == 3 and keys[0][0] == (0.999, 32 / 100, 1.0, 1.0)  # α, S/B₀, lr, gain
    assert all(isinstance(a, int) for a in keys[0][1]) and len(keys[0][1]) > 4
