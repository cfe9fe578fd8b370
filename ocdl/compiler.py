"""spec → networkx DAG → shape-checked, stage-partitioned :class:`System` on a device.

Nodes of the graph are ``input`` and the top-level stages; an edge u → v means stage v reads the
output of u. Stages without ``inputs`` read the previous stage. The compiler checks that every
reference exists and points backwards (so the graph is acyclic and the spec order is a
topological order), that every stage's output is used, infers shapes (a mismatch names the
stage and both shapes), checks that the controls fit in memory (the estimate is refused above
:func:`ocdl.limits.max_param_bytes` before anything is allocated), creates the controls θ_t
on their admissible sets from a seeded generator (the same values on every device) or, when the
spec names ``initial_controls``, from that file (:mod:`ocdl.modelspec.initial`), and resolves the
running costs.
"""
from __future__ import annotations

import math
from typing import Any

import networkx as nx
import torch

from .controls import ControlSet
from .costs import TERMINALS, check_terminal
from .errors import ShapeError, SpecError, did_you_mean
from .ops import get_op
from . import limits
from .modelspec.model import ModelSpec, NetworkSpec, StageSpec
from .system import Control, Stage, System

INPUT = "input"


def build_graph(spec: NetworkSpec) -> nx.DiGraph:
    """The model's DAG: node ``input`` and one node per top-level stage (attribute ``index``)."""
    g = nx.DiGraph()
    g.add_node(INPUT, index=-1, op="input")
    position = {INPUT: -1}
    for i, st in enumerate(spec.stages):
        g.add_node(st.name, index=i, op=st.op)
        position[st.name] = i
    names = [s.name for s in spec.stages]
    for i, st in enumerate(spec.stages):
        refs = st.inputs if st.inputs is not None else ((names[i - 1],) if i > 0 else (INPUT,))
        for j, ref in enumerate(refs):
            path = f"stages[{i}].inputs" + (f"[{j}]" if st.inputs is not None else "")
            if ref not in position:
                raise SpecError(f"unknown stage '{ref}'{did_you_mean(ref, position)}; inputs name "
                                "earlier stages or 'input'", path=path)
            if position[ref] >= i:
                raise SpecError(f"stage '{ref}' is defined at or after this one (stages"
                                f"[{position[ref]}]); a stage may read only earlier stages",
                                path=path)
            g.add_edge(ref, st.name, slot=j)
    if not nx.is_directed_acyclic_graph(g):  # cannot happen given the checks above
        raise SpecError("the stages form a cycle", path="stages")
    for i, st in enumerate(spec.stages[:-1]):
        if g.out_degree(st.name) == 0:
            raise SpecError(f"the output of stage '{st.name}' is never used; connect it through "
                            "'inputs' of a later stage or remove it", path=f"stages[{i}]")
    return g


def compile_spec(spec: ModelSpec, device: Any = "cpu", dtype: Any = None, seed: int = 0) -> System:
    """Compile any validated spec (:meth:`ocdl.modelspec.model.ModelSpec.compile`): a network by
    :func:`compile_network`, an equation-defined system by
    :func:`ocdl.symbolic.system.compile_equations`."""
    return spec.compile(device=device, dtype=dtype, seed=seed)


def compile_network(spec: NetworkSpec, device: Any = "cpu", dtype: Any = None, seed: int = 0
                    ) -> System:
    """Compile a network spec into a :class:`System` on ``device`` (``dtype`` default float32).

    Controls are initialised on the CPU from ``torch.Generator().manual_seed(seed)`` in stage
    order and then moved, so a seed gives the same θ on every device.
    """
    try:
        return _compile(spec, torch.device(device), dtype or torch.float32, seed)
    except SpecError as e:
        raise spec.located(e) from None


def _compile(spec: NetworkSpec, device: torch.device, dtype: torch.dtype, seed: int) -> System:
    g = build_graph(spec)
    shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(spec.input)}
    index = {INPUT: 0}
    stages: list[Stage] = []
    controls: list[Control] = []
    theta: dict[str, torch.Tensor] = {}
    pending: list[tuple[str, tuple[int, ...], ControlSet, str]] = []  # name, shape, set, path
    buffers: list[tuple[Stage, StageSpec, list[tuple[int, ...]], str]] = []

    def build(st: StageSpec, path: str, in_shapes: list[tuple[int, ...]], inputs: tuple[int, ...],
              t: int) -> Stage:
        op = get_op(st.op, f"{path}.op")
        if op.composite:
            out = op.out_shape(st.params, in_shapes, path)
            stage = Stage(st.name, op, st.params, in_shapes, out, inputs, t)
            shape = in_shapes[0]
            for k, inner in enumerate(st.stages):
                child = build(inner, f"{path}.stages[{k}]", [shape], (), t)
                stage.children.append(child)
                shape = child.out_shape
            if tuple(shape) != tuple(in_shapes[0]):
                raise ShapeError(f"the inner stages map shape {list(in_shapes[0])} to "
                                 f"{list(shape)}; a residual block x + h·g(x) needs g to keep the "
                                 "shape", path=path)
            stage.flops = op.flops(st.params, in_shapes, out) + sum(c.flops for c in
                                                                    stage.children)
            return stage
        out = op.out_shape(st.params, in_shapes, path)
        _check_numel(out, path)
        stage = Stage(st.name, op, st.params, in_shapes, out, inputs, t)
        stage.flops = op.flops(st.params, in_shapes, out)
        decls = {d.name: d for d in op.controls(st.params, in_shapes)}
        chosen: dict[str, ControlSet] = {}
        if isinstance(st.control, ControlSet):
            if not decls:
                raise SpecError(f"a {st.op} stage has no controls; remove 'control'",
                                path=f"{path}.control")
            chosen = {n: st.control for n, d in decls.items() if d.primary}
        elif isinstance(st.control, dict):
            for n, cs in st.control.items():
                if n not in decls:
                    have = ", ".join(decls) or "none"
                    raise SpecError(f"a {st.op} stage has no control '{n}'"
                                    f"{did_you_mean(n, decls)}; its controls: {have}",
                                    path=f"{path}.control.{n}")
                chosen[n] = cs
        for n, d in decls.items():
            cset = chosen.get(n, d.default)
            full = f"{st.name}.{n}"
            pending.append((full, tuple(d.shape), cset, path))
            controls.append(Control(full, t, st.name, n, tuple(d.shape), cset, weight=d.weight))
            stage.controls[n] = full
        buffers.append((stage, st, in_shapes, path))
        return stage

    for i, st in enumerate(spec.stages):
        refs = [u for u, _ in sorted(g.in_edges(st.name), key=lambda e: g.edges[e]["slot"])]
        in_shapes = [shapes[r] for r in refs]
        stage = build(st, f"stages[{i}]", in_shapes, tuple(index[r] for r in refs), i)
        stages.append(stage)
        shapes[st.name] = stage.out_shape
        index[st.name] = i + 1
    _check_memory(pending, buffers, dtype)
    gen = torch.Generator().manual_seed(seed)
    for full, shape, cset, _ in pending:  # stage order, as the seed promises
        value = cset.init(shape, generator=gen, dtype=torch.float64)
        theta[full] = value.to(device=device, dtype=dtype).requires_grad_(True)
    for stage, st, in_shapes, _ in buffers:
        stage.buffers = {k: v.to(device=device, dtype=dtype)
                         for k, v in stage.op.buffers(st.params, in_shapes).items()}
    if spec.initial_controls is not None:  # the spec's start values replace the seeded ones
        from .modelspec.initial import apply_initial
        apply_initial(spec.initial_controls, stages, controls, theta)

    check_terminal(spec.cost.terminal, stages[-1].out_shape, "cost.terminal")
    state_costs = _running_costs(spec, stages, controls)
    return System(spec, stages, controls, theta, TERMINALS[spec.cost.terminal], state_costs,
                  device, dtype, graph=g)


def _check_numel(shape: tuple[int, ...], path: str) -> None:
    n = math.prod(shape)
    if n > limits.MAX_STATE_NUMEL:
        raise SpecError(f"the stage's output {list(shape)} holds {n:,} numbers per sample; at most "
                        f"{limits.MAX_STATE_NUMEL:,} are allowed: make the stage smaller",
                        path=path)


def _check_memory(pending: list[tuple[str, tuple[int, ...], ControlSet, str]],
                  buffers: list[tuple[Stage, StageSpec, list[tuple[int, ...]], str]],
                  dtype: torch.dtype) -> None:
    """Refuse, before allocating anything, controls and BatchNorm statistics that need more than
    :func:`limits.max_param_bytes`; the error names the largest tensor and its stage."""
    parts = [(math.prod(shape), f"the largest, {name}, has shape {list(shape)}", path)
             for name, shape, _, path in pending]
    for st, spec, in_shapes, path in buffers:
        n = st.op.buffer_numel(spec.params, in_shapes)
        parts.append((n, f"the largest, the statistics of {st.name}, has {n:,}", path))
    numel = sum(n for n, _, _ in parts)
    need, cap = numel * torch.empty((), dtype=dtype).element_size(), limits.max_param_bytes()
    if need <= cap:
        return
    _, largest, path = max(parts, key=lambda e: e[0])
    kind = str(dtype).replace("torch.", "")
    raise SpecError(f"the parameters need {limits.gib(need)} ({numel:,} {kind} numbers in the "
                    f"controls and BatchNorm statistics; {largest}), over the limit of "
                    f"{limits.gib(cap)}; make the network smaller or raise the limit with "
                    f"{limits.PARAM_GIB_ENV}", path=path)


def _running_costs(spec: NetworkSpec, stages: list[Stage], controls: list[Control]
                   ) -> dict[int, float]:
    by_stage: dict[str, list[Control]] = {}
    for c in controls:
        by_stage.setdefault(c.stage, []).append(c)
    top_of = {s.name: s.t for top in stages for s in top.walk()}
    state_costs: dict[int, float] = {}
    for i, r in enumerate(spec.cost.running):
        path = f"cost.running[{i}]"
        if r.type == "state_l2":
            targets = r.apply_to if r.apply_to is not None else tuple(s.name for s in stages)
            for j, name in enumerate(targets):
                if name not in top_of or any(s.name == name for top in stages
                                              for s in top.walk() if s is not top):
                    raise SpecError(f"unknown top-level stage '{name}'"
                                    f"{did_you_mean(name, [s.name for s in stages])}",
                                    path=f"{path}.apply_to[{j}]")
                t = top_of[name]
                state_costs[t] = state_costs.get(t, 0.0) + r.weight
            continue
        if r.apply_to is None:
            chosen = [c for c in controls if c.weight]
        else:
            chosen = []
            names = {c.name for c in controls}
            for j, name in enumerate(r.apply_to):
                if name in by_stage:
                    chosen += by_stage[name]
                elif name in names:
                    chosen += [c for c in controls if c.name == name]
                else:
                    raise SpecError(f"'{name}' is neither a stage with controls nor a control"
                                    f"{did_you_mean(name, list(by_stage) + sorted(names))}",
                                    path=f"{path}.apply_to[{j}]")
        for c in chosen:
            if r.type == "l1":
                c.l1 += r.weight
            else:
                c.l2 += r.weight
    return state_costs
