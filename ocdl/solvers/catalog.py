"""The solvers for people to read: the list of presets (``ocdl solvers``), one preset's settings
by block with their flat names, values and sources (``ocdl solvers NAME``), and the Markdown
table of every setting of every preset (``ocdl solvers --settings``: the README's table).

What a setting does comes from the parts (:attr:`Part.DOCS`, :attr:`Solver.top_docs`); where its
value comes from, from the preset's comment on its line (``# [flat_name] source``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .presets import RESERVED, preset_names, preset_path, read_preset
from .registry import list_solvers, make_solver, solver_info

FIRST = ("emsa", "msa")
"""Solver classes whose presets come first in the settings table (the PMP solvers), then the
baselines."""

_COMMENT = re.compile(r"\s#(?:\s|$)")


@dataclass(frozen=True)
class Setting:
    """One setting of a solver as set up by a preset."""

    flat: str      # the name --set and run records use
    path: str      # block.key, or a top-level name
    value: Any
    source: str    # the preset's comment on it ("" where the preset leaves the default)
    doc: str       # what it does


def word(value: Any) -> str:
    """A value as a user writes it in YAML: null, true, 0.001, 1e-08, [0.9, 0.999]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(word(v) for v in value) + "]"
    return str(value)


def setting_doc(cls: type, path: str) -> str:
    """What the setting ``path`` (``block.key`` or a top-level name) of the solver class ``cls``
    does, in one line ("" when its part does not say)."""
    block, _, key = path.partition(".")
    if not key:
        return cls.top_docs.get(block, "")
    part = cls.parts.get(block)
    return part.DOCS.get(key, "") if part is not None else ""


def _comments(text: str) -> dict[int, str]:
    """Line number → the comment on that line, with the comment-only lines below it that are
    indented deeper than the line's key (a comment continued)."""
    rows = text.splitlines()
    out: dict[int, str] = {}
    for n, line in enumerate(rows, 1):
        m = _COMMENT.search(line)
        if m is None or not line[:m.start()].strip():
            continue
        indent = len(line) - len(line.lstrip())
        parts = [line[m.end():].strip()]
        for below in rows[n:]:
            body = below.lstrip()
            if not body.startswith("#") or len(below) - len(body) <= indent:
                break
            parts.append(body[1:].strip())
        out[n] = " ".join(p for p in parts if p)
    return out


def preset_file(name: str) -> Any:
    """The preset file of ``name``: a shipped preset, a user's preset file, or None (a solver
    class without a preset)."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    return preset_path(name)


def _sources(name: str, solver: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The comments of the preset ``name``: flat name → source (its ``[flat]`` tag removed),
    block → comment."""
    from ..modelspec.yaml_io import parse_yaml
    path = preset_file(name)
    if path is None:
        return {}, {}
    text = path.read_text(encoding="utf-8")
    data, lines = parse_yaml(text, str(path))
    comments = _comments(text)
    layout = solver.layout
    flat_src: dict[str, str] = {}
    block_src: dict[str, str] = {}
    for key, value in data.items():
        if key in RESERVED:
            continue
        if key in layout.blocks and isinstance(value, dict):
            keys = [f"{key}.{k}" for k in value]
            if lines.get(key) not in {lines.get(k) for k in keys}:  # not a one-line {k: v}
                block_src[key] = comments.get(lines.get(key, 0), "")
        else:
            keys = [key]
        for k in keys:
            note = comments.get(lines.get(k, 0), "")
            flat_src[layout.path_to_flat(k)] = re.sub(r"^\[[^\]]*\]\s*", "", note)
    return flat_src, block_src


def preset_settings(name: str) -> tuple[dict[str, Any], dict[str, str], list[Setting]]:
    """The preset (or class) ``name``: :func:`~ocdl.solvers.registry.solver_info`'s summary, the
    preset's comment per block, and every setting, the top-level ones first, then block by
    block."""
    info = solver_info(name)
    solver = make_solver(name)
    path = preset_file(name)
    if path is not None:
        info["description"] = read_preset(path).get("description", info["description"])
    cls = type(solver)
    flat_src, block_src = _sources(name, solver)
    settings = [Setting(flat, solver.layout.path[flat], value, flat_src.get(flat, ""),
                        setting_doc(cls, solver.layout.path[flat]))
                for flat, value in solver.hp.items()]
    first: dict[str, int] = {"": -1}  # block → where it first comes; top-level ones first
    for i, s in enumerate(settings):
        first.setdefault(s.path.partition(".")[0] if "." in s.path else "", i)
    settings.sort(key=lambda s: first[s.path.partition(".")[0] if "." in s.path else ""])
    return info, block_src, settings


def render_preset(name: str) -> str:
    """``ocdl solvers NAME``: the preset's settings as YAML blocks, each line with its flat
    name, its value and its source (or, where the preset leaves the default, what it does)."""
    info, block_src, settings = preset_settings(name)
    path = preset_file(name)
    head = [f"# {name}: {info['description']}",
            f"# solver class {info['solver']}; control sets: {', '.join(info['supports'])}"
            + (f"; file: {path}" if path is not None else "; no preset: the class defaults"),
            "# [flat name] for --set and run records; its source, or (default) and what it does"]
    body: list[tuple[str, str]] = []
    block = None
    for s in settings:
        b, _, key = s.path.partition(".")
        if key and b != block:
            block = b
            body.append((f"{b}:", block_src.get(b, "")))
        note = s.source if s.source else f"(default) {s.doc}"
        indent = "  " if key else ""
        body.append((f"{indent}{key or b}: {word(s.value)}", f"[{s.flat}] {note}".rstrip()))
    width = max(len(left) for left, _ in body) + 2
    lines = head + [f"{left:<{width}}# {right}" if right else left for left, right in body]
    return "\n".join(lines)


def preset_table() -> list[dict[str, Any]]:
    """One row per solver name (the presets, then classes without one): ``name``, ``solver``
    (the class), ``supports`` (the control-set kinds it accepts) and ``description``."""
    return [solver_info(n) for n in list_solvers()]


def _preset_classes() -> dict[str, str]:
    """Preset → its solver class, the presets of :data:`FIRST`'s classes first."""
    classes = {n: make_solver(n).name for n in preset_names()}
    rank = {c: i for i, c in enumerate(FIRST)}
    return {n: classes[n] for n in sorted(classes, key=lambda n: (rank.get(classes[n],
                                                                           len(FIRST)), n))}


def _names(names: list[str], classes: dict[str, str]) -> str:
    """Preset names for a table cell: ``all presets``, or ``every C preset`` for all of a solver
    class's presets (when it has several), and the others by name."""
    if set(names) == set(classes):
        return "all presets"
    out: list[str] = []
    for n in names:
        group = [m for m, c in classes.items() if c == classes[n]]
        if len(group) > 1 and set(group) <= set(names):
            label = f"every {classes[n]} preset"
            if label not in out:
                out.append(label)
        else:
            out.append(n)
    return ", ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    """The Markdown table of every setting of every preset: flat key, block path, the default
    of each preset that has it, and what it does (``ocdl solvers --settings``)."""
    rows: dict[tuple[str, str, str], list[tuple[str, Any]]] = {}
    classes = _preset_classes()
    for name in classes:
        solver = make_solver(name)
        for flat, value in solver.hp.items():
            path = solver.layout.path[flat]
            rows.setdefault((flat, path, setting_doc(type(solver), path)), []).append(
                (name, value))
    out = ["| key | block path | presets: default | what it does |", "|---|---|---|---|"]
    for (flat, path, doc), values in rows.items():
        by_value: dict[str, list[str]] = {}
        for name, value in values:
            by_value.setdefault(word(value), []).append(name)
        defaults = "; ".join(f"{_names(names, classes)}: {v}" for v, names in by_value.items())
        where = f"`{path}`" if "." in path else "(top level)"
        out.append(f"| `{flat}` | {where} | {_cell(defaults)} | {_cell(doc)} |")
    return "\n".join(out)
