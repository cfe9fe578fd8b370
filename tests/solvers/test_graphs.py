"""GraphedUpdate's failure path, on the CPU with torch.cuda's graph API replaced by stand-ins (the
captures themselves run in ``pytest -m gpu``, tests/solvers/test_gpu.py)."""
from __future__ import annotations

import contextlib

import pytest
import torch

from ocdl.errors import SolverError
from ocdl.solvers.graphs import GraphedUpdate


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
