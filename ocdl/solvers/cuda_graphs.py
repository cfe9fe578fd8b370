"""Execution strategies: a solver's step run eagerly, or its update (or its whole step) replayed
as one CUDA graph.

:class:`Execution` is the part (setting ``cuda_graph``) that picks the strategy of a step: eager
(``false``, and always on a CPU), the update after the reverse pass replayed as one graph
(``true`` / ``update``, E-MSA), or the whole step — forward, reverse pass and update, batch in,
θ and metrics out — replayed as one graph (``step``). None changes a number: a replay runs the
eager step's kernels (``pytest -m gpu`` compares them).

A discrete E-MSA update is a fixed sequence of about a hundred small elementwise kernels whose
shapes never change; on a GPU their launch cost, not their work, sets the step time. The same
holds for a small network's forward and reverse passes at a small batch. A
:class:`GraphedUpdate` runs ``fn(inputs)`` eagerly the first time for each ``warm_key`` (which
creates the library handles and scratch buffers and lets cuDNN pick its algorithms for the
inputs' shapes), captures it as a CUDA graph the next time, and afterwards only copies the new
inputs into the graph's static buffers and replays it: two launches instead of hundreds. Warm-up
and captures run on one side stream of the wrapper's own (torch requires a side-stream warm-up
before capturing a reverse pass, and cuBLAS workspaces are per stream). ``key`` names everything
the captured graph depends on besides the inputs (tensor addresses, shapes, Python numbers baked
into kernels such as 1 − α): a new key recaptures. ``fn`` must be free of host synchronisation
and return 0-d tensors of one dtype; they come back as views of one fresh tensor, so later
replays do not overwrite earlier metrics.

A capture that fails raises :class:`~ocdl.errors.SolverError` naming the setting to change: torch
can leave its allocator in a capturing state after a failed capture (pytorch#180395), so
carrying on eagerly in the same process is not safe.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import torch

from ..errors import SolverError
from .settings import Part

Update = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class GraphedUpdate:
    """Capture-once, replay-often wrapper of an update function (CUDA only). ``what`` names the
    setting that turns it off, for the error message of a failed capture."""

    def __init__(self, what: str = "cuda_graph: false") -> None:
        self.what = what
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key: Hashable = None
        self.warmed: set[Hashable] = set()
        self.captures = 0
        self.stream: torch.cuda.Stream | None = None
        self.static: dict[str, torch.Tensor] = {}
        self.out_names: list[str] = []
        self.out_vec: torch.Tensor | None = None

    def __call__(self, fn: Update, key: Hashable, inputs: dict[str, torch.Tensor],
                 warm_key: Hashable = None) -> dict[str, torch.Tensor]:
        if self.graph is not None and key == self.key:
            names = list(self.static)
            torch._foreach_copy_([self.static[k] for k in names], [inputs[k] for k in names])
            self.graph.replay()
        elif warm_key not in self.warmed:
            self.warmed.add(warm_key)
            return self._warm(fn, inputs)
        else:
            self._capture(fn, key, inputs)
            self.graph.replay()  # type: ignore[union-attr]
        vals = self.out_vec.clone()  # type: ignore[union-attr]
        return dict(zip(self.out_names, vals.unbind()))

    def _side_stream(self, device: torch.device) -> torch.cuda.Stream:
        if self.stream is None:
            self.stream = torch.cuda.Stream(device=device)
        return self.stream

    def _warm(self, fn: Update, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``fn(inputs)`` on the side stream, which waits for the current one and is waited for."""
        device = next(iter(inputs.values())).device
        cur = torch.cuda.current_stream(device)
        side = self._side_stream(device)
        side.wait_stream(cur)
        with torch.cuda.stream(side):
            out = fn(inputs)
        cur.wait_stream(side)
        for v in out.values():  # made on the side stream, read on the current one
            v.record_stream(cur)
        return out

    def _capture(self, fn: Update, key: Hashable, inputs: dict[str, torch.Tensor]) -> None:
        device = next(iter(inputs.values())).device
        if torch.is_autocast_enabled("cuda") and torch.is_autocast_cache_enabled():
            raise SolverError(f"cannot capture the solver's step as a CUDA graph inside a "
                              f"torch.autocast with its weight cache on; pass "
                              f"cache_enabled=False to torch.autocast, or set {self.what}")
        self.graph = self.out_vec = None  # free the old graph's pool before the new capture
        static = {k: v.detach().clone() for k, v in inputs.items()}
        side = self._side_stream(device)
        g = torch.cuda.CUDAGraph()
        try:  # the outer stream context restores the caller's stream even if capture_end fails;
            # thread_local: a data feeder's host thread may pin memory meanwhile
            with torch.cuda.stream(side), \
                    torch.cuda.graph(g, stream=side, capture_error_mode="thread_local"):
                out = fn(static)
                names = list(out)
                vec = torch.stack([out[k] for k in names])
        except Exception as e:
            raise SolverError(f"the CUDA graph capture of the solver's step failed ({e}); set "
                              f"{self.what} to run it eagerly") from e
        self.graph, self.key, self.static = g, key, static
        self.out_names, self.out_vec = names, vec
        self.captures += 1


# ---------------------------------------------------------------------- keys of captured steps
def addresses(*trees: object) -> tuple[int, ...]:
    """The ``data_ptr`` of every tensor in nested dicts, lists and tuples (dict entries in sorted
    key order): a graph that reads or writes those tensors must be recaptured when any moves (a
    reloaded checkpoint, ``System.to``)."""
    out: list[int] = []

    def walk(t: object) -> None:
        if isinstance(t, torch.Tensor):
            out.append(t.data_ptr())
        elif isinstance(t, dict):
            for k in sorted(t, key=str):
                walk(t[k])
        elif isinstance(t, (list, tuple)):
            for v in t:
                walk(v)
    for tree in trees:
        walk(tree)
    return tuple(out)


def kernel_choice(system, batch: tuple[torch.Tensor, ...]) -> tuple:
    """What selects the kernels of a forward and reverse pass: the batch's shapes and dtypes, the
    system's autocast dtype and memory format, cuDNN's and TF32's switches. A graph is warmed up
    (eagerly) once per value, so that cuDNN never searches for algorithms during a capture."""
    cudnn = torch.backends.cudnn
    return (tuple((tuple(t.shape), t.dtype) for t in batch), system.autocast,
            system.channels_last, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32)


def running_buffers(system) -> list[torch.Tensor]:
    """The system's buffers (BatchNorm's running statistics), which a captured step updates."""
    return [b for st in system.all_stages() for b in st.buffers.values()]


def graphed_step(graph: GraphedUpdate, system, state: dict, x: torch.Tensor, y: torch.Tensor,
                 body: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
                 scalars: tuple) -> dict[str, torch.Tensor]:
    """``body(x, y)`` — a whole training step, forward, reverse pass and update, free of host
    synchronisation — through ``graph``, keyed by the Python numbers it bakes in (``scalars``:
    rates, 1 − α, …), the addresses of θ, of every tensor in the solver ``state`` and of the
    running statistics, and :func:`kernel_choice` (also the warm-up key)."""
    choice = kernel_choice(system, (x, y))
    key = (scalars, addresses(system.theta, state), addresses(running_buffers(system)), choice)
    return graph(lambda b: body(b["x"], b["y"]), key, {"x": x, "y": y}, warm_key=choice)


Body = Callable[[torch.Tensor, torch.Tensor, bool], dict[str, torch.Tensor]]
"""A solver's step body ``(x, y, graph_update) → metrics``: forward, reverse pass and update,
free of host synchronisation; ``graph_update`` asks it to replay its update through
:attr:`Execution.graph` (:meth:`Execution.update`)."""


class Execution(Part):
    """Setting ``cuda_graph``: false (eager), true or ``update`` (the update replayed as one CUDA
    graph), ``step`` (the whole step replayed); no effect on the CPU. A solver narrows the
    choices to those it supports (the baselines: false, ``step``)."""

    DEFAULTS = {"cuda_graph": False}
    DOCS = {"cuda_graph": "on CUDA, true replays the update as one CUDA graph, step the whole "
                          "step; no effect on the CPU"}
    CHOICES = {"cuda_graph": (False, True, "update", "step")}

    def __init__(self, s: Mapping[str, Any], choices: tuple[Any, ...] = CHOICES["cuda_graph"],
                 name: str = "cuda_graph"):
        self.mode = s["cuda_graph"]
        off = f"{name} to false (--set {name}=false)"
        self.graph = GraphedUpdate(f"{name} to update (only the update graphed) or false "
                                   f"(--set {name}=false)"
                                   if self.mode == "step" and "update" in choices else off)

    def run(self, system, state: dict, x: torch.Tensor, y: torch.Tensor, body: Body,
            scalars: Callable[[], tuple]) -> dict[str, torch.Tensor]:
        """``body(x, y, graph_update)`` as set: on CUDA with ``step`` through
        :func:`graphed_step` keyed by ``scalars()`` (the Python numbers it bakes in), with
        ``true``/``update`` eagerly but asking for the update to be graphed; eagerly otherwise."""
        mode = self.mode if system.device.type == "cuda" else False
        if mode == "step":
            return graphed_step(self.graph, system, state, x, y,
                                lambda xb, yb: body(xb, yb, False), scalars())
        return body(x, y, bool(mode))

    def update(self, fn: Update, key: Hashable, inputs: dict[str, torch.Tensor]
               ) -> dict[str, torch.Tensor]:
        """``fn(inputs)`` replayed as one CUDA graph keyed by ``key``."""
        return self.graph(fn, key, inputs)
