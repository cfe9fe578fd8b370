"""A readable summary of a compiled system: stages, shapes, control sets, sizes and FLOPs,
and the model's DAG as a picture (PNG via matplotlib) or Graphviz DOT text."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import OcdlError
from .system import Stage, System


@dataclass
class StageRow:
    t: int | None  # None for stages inside a residual block
    name: str
    op: str
    inputs: str
    shape: tuple[int, ...]
    control: str
    params: int
    flops: int
    depth: int = 0


def _control_text(system: System, stage: Stage) -> str:
    parts = []
    for param, full in stage.controls.items():
        parts.append(f"{param}: {system.control[full].cset.describe()}")
    return "; ".join(parts) or "-"


def stage_rows(system: System) -> list[StageRow]:
    """One row per stage (inner residual stages indented), in stage order."""
    names = ["input"] + [s.name for s in system.stages]
    rows: list[StageRow] = []

    def add(st: Stage, t: int | None, depth: int, inputs: str) -> None:
        n = sum(system.control[f].numel for f in st.controls.values())
        if st.children:
            n = sum(system.control[f].numel for c in st.walk() for f in c.controls.values())
        rows.append(StageRow(t, st.name, st.op.name, inputs, st.out_shape,
                             _control_text(system, st), n, st.flops, depth))
        for c in st.children:
            add(c, None, depth + 1, "")

    for t, st in enumerate(system.stages):
        add(st, t, 0, ", ".join(names[i] for i in st.inputs))
    return rows


def render_table(system: System) -> "object":
    """A rich Table of the stages with totals in the caption."""
    from rich.table import Table
    table = Table(title=f"{system.spec.name}: input {list(system.input_shape)} → output "
                        f"{list(system.output_shape)}, T = {system.T}")
    for col, just in (("t", "right"), ("stage", "left"), ("op", "left"), ("reads", "left"),
                      ("output", "left"), ("control set", "left"), ("params", "right"),
                      ("FLOPs/sample", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in stage_rows(system):
        table.add_row("" if r.t is None else str(r.t), "  " * r.depth + r.name, r.op, r.inputs,
                      str(list(r.shape)), r.control, f"{r.params:,}" if r.params else "-",
                      f"{r.flops:,}")
    total_flops = sum(st.flops for st in system.stages)
    spec = system.spec
    running = ", ".join(f"{r.type} {r.weight:g}"
                        + (f" on {', '.join(r.apply_to)}" if r.apply_to else "")
                        for r in spec.cost.running) or "none"
    table.caption = (f"T = {system.T} stages · {system.num_params():,} control entries · "
                     f"{total_flops:,} FLOPs per sample (forward) · terminal cost "
                     f"{spec.cost.terminal} · running costs: {running}"
                     + (f" · data: {spec.data.name}, batch {spec.data.batch_size}"
                        if spec.data else ""))
    return table


def to_dot(system: System) -> str:
    """Graphviz DOT text of the DAG."""
    g: nx.DiGraph = system.graph
    lines = [f'digraph "{system.spec.name}" {{', "  rankdir=TB;", "  node [shape=box];"]
    by_name = {s.name: s for s in system.stages}
    for n in g.nodes:
        if n == "input":
            label = f"input\\n{list(system.input_shape)}"
        else:
            st = by_name[n]
            label = f"{n}\\n{st.op.name} {list(st.out_shape)}"
            if st.controls:
                label += "\\n" + _control_text(system, st).replace('"', "'")
        lines.append(f'  "{n}" [label="{label}"];')
    for u, v in g.edges:
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(system: System, path: str | Path) -> Path:
    """Write the DAG to ``path``: ``.dot``/``.gv`` as DOT text, ``.png``/``.svg``/``.pdf`` drawn
    with matplotlib (stages top to bottom, skip connections as curved edges)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        path.write_text(to_dot(system))
        return path
    if suffix not in (".png", ".svg", ".pdf"):
        raise OcdlError(f"cannot write a graph as '{suffix or path.name}'; use a .png, .svg, .pdf "
                        "or .dot file name")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g: nx.DiGraph = system.graph
    order = list(nx.topological_sort(g))
    pos = {n: (0.0, -float(i)) for i, n in enumerate(order)}  # skips drawn as arcs below
    by_name = {s.name: s for s in system.stages}
    labels = {n: ("input" if n == "input" else f"{n} ({by_name[n].op.name})") for n in g.nodes}
    fig, ax = plt.subplots(figsize=(4.5, max(3.0, 0.55 * len(order))))
    nx.draw_networkx_nodes(g, pos, ax=ax, node_shape="s", node_size=300, node_color="#cfe3f7")
    chain = [(u, v) for u, v in g.edges if order.index(v) - order.index(u) == 1]
    skips = [(u, v) for u, v in g.edges if order.index(v) - order.index(u) > 1]
    nx.draw_networkx_edges(g, pos, edgelist=chain, ax=ax, arrows=True)
    nx.draw_networkx_edges(g, pos, edgelist=skips, ax=ax, arrows=True,
                           connectionstyle="arc3,rad=0.6", edge_color="#c05020")
    for n, (x, y) in pos.items():
        ax.text(x + 0.08, y, labels[n], va="center", fontsize=8)
    ax.set_xlim(-1.0, 2.5)
    ax.axis("off")
    ax.set_title(system.spec.name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@functools.singledispatch
def describe(system: System, latex: bool = False) -> Any:
    """What ``ocdl explain`` shows of a compiled system: for a network the table of its stages
    (:func:`render_table`); an equation-defined system registers its equations
    (:mod:`ocdl.symbolic.system`). A rich renderable or plain text."""
    return render_table(system)


@functools.singledispatch
def summary(system: System) -> dict[str, Any]:
    """What ``ocdl explain --json`` prints: the facts of :func:`describe` as plain JSON values.
    For a network: its stages (:func:`stage_rows`), T, control entries, FLOPs per sample and
    costs; an equation-defined system registers its own (:mod:`ocdl.symbolic.system`)."""
    spec = system.spec
    return {"name": spec.name, "kind": "network", "input": list(system.input_shape),
            "output": list(system.output_shape), "T": system.T,
            "control_entries": system.num_params(),
            "flops_per_sample": sum(st.flops for st in system.stages),
            "stages": [{**asdict(r), "shape": list(r.shape)} for r in stage_rows(system)],
            "cost": {"terminal": spec.cost.terminal,
                     "running": [{"type": r.type, "weight": r.weight,
                                  "apply_to": list(r.apply_to or [])}
                                 for r in spec.cost.running]},
            "data": ({"name": spec.data.name, "batch_size": spec.data.batch_size}
                     if spec.data else None)}
