"""The grid of a sweep (:mod:`ocdl.run.sweep`): axes ``KEY=V1,V2,…`` read like ``--set`` values
(a list value keeps its commas inside brackets: ``betas=[0.9,0.99],[0.9,0.999]``), and their
points, the product of the axes with the first varying slowest, each named by its values
(``rho=0.5,seed=1``, the name of its run folder)."""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .folder import plain
from .overrides import parse_value

SEED = "seed"
MAX_POINTS = 10_000


@dataclass(frozen=True)
class Point:
    """One grid point: its folder ``name`` (``rho=0.5,seed=1``), its ``--set`` settings (every
    axis but ``seed``), its seed, and its ``label``: the table's row, the name less the seed."""

    name: str
    settings: dict[str, Any]
    seed: int
    label: str


def _split_values(text: str) -> list[str]:
    """``0.3,0.5`` → ``["0.3", "0.5"]``; commas inside brackets or braces stay."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def parse_axis(item: str) -> tuple[str, list[Any]]:
    """``"rho=0.3,0.5"`` → ``("rho", [0.3, 0.5])`` (values read as ``--set`` values)."""
    key, eq, values = str(item).partition("=")
    key = key.strip()
    example = "e.g. --grid rho=0.3,0.5,1.0 or --grid seed=0,1,2"
    if not eq or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,…, {example}")
    texts = [t.strip() for t in _split_values(values)]
    if not any(texts):
        raise ConfigError(f"--grid {item!r}: no values; {example}")
    if not all(texts):
        raise ConfigError(f"--grid {item!r}: an empty value (two commas, or one at an end); "
                          f"{example}")
    return key, [parse_value(t) for t in texts]


def parse_grid(grid: Mapping[str, Any] | Iterable[str] | str) -> dict[str, list[Any]]:
    """The axes of ``grid``: a mapping ``{"rho": [0.3, 0.5], "seed": [0, 1]}`` or
    ``--grid`` texts ``["rho=0.3,0.5", "seed=0,1"]``, checked (no axis twice, no value twice
    in an axis, seeds non-negative integers, at most :data:`MAX_POINTS` points)."""
    if isinstance(grid, str):
        grid = [grid]
    axes: dict[str, list[Any]] = {}
    pairs = ([(str(k), list(v) if isinstance(v, (list, tuple)) else [v])
              for k, v in grid.items()] if isinstance(grid, Mapping)
             else [parse_axis(item) for item in grid])
    for key, values in pairs:
        if key in axes:
            raise ConfigError(f"--grid {key}: the axis is given twice; give its values once, "
                              f"e.g. --grid {key}=A,B")
        if not values:
            raise ConfigError(f"--grid {key}: no values")
        texts = [value_text(v) for v in values]
        if len(set(texts)) != len(texts):
            raise ConfigError(f"--grid {key}: a value is listed twice in {','.join(texts)}")
        if key == SEED and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                   for v in values):
            raise ConfigError(f"--grid seed={','.join(texts)}: seeds are integers ≥ 0, e.g. "
                              "--grid seed=0,1,2")
        axes[key] = values
    if not axes:
        raise ConfigError("give at least one grid axis, e.g. --grid rho=0.3,0.5")
    n = 1
    for values in axes.values():
        n *= len(values)
    if n > MAX_POINTS:
        raise ConfigError(f"the grid has {n} points, more than {MAX_POINTS}; sweep fewer values")
    return axes


def value_text(value: Any) -> str:
    """A grid value as it appears in a point's name: ``0.5``, ``1e-07``, ``true``, ``[0.9,
    0.99]`` (the same for the command line's ``0.5`` and Python's ``0.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(plain(value), separators=(",", ":"))


def grid_text(grid: Mapping[str, Sequence[Any]]) -> str:
    """``rho=0.3,0.5 × seed=0,1``."""
    return " × ".join(f"{k}={','.join(value_text(v) for v in vs)}" for k, vs in grid.items())


def _folder_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+\-\[\]]+", "_", text)


def grid_points(grid: Mapping[str, Sequence[Any]], seed: int = 0) -> list[Point]:
    """The points of ``grid`` in order (the first axis varying slowest); ``seed`` is the seed
    of every point when ``seed`` is not an axis."""
    points, names = [], set()
    for values in itertools.product(*grid.values()):
        chosen = dict(zip(grid, values))
        name = _folder_name(",".join(f"{k}={value_text(v)}" for k, v in chosen.items()))
        label = ",".join(f"{k}={value_text(v)}" for k, v in chosen.items() if k != SEED)
        if name in names:
            raise ConfigError(f"two grid points have the folder name {name}; give values that "
                              "differ in letters and digits")
        names.add(name)
        points.append(Point(name=name, settings={k: v for k, v in chosen.items() if k != SEED},
                            seed=int(chosen.get(SEED, seed)), label=label))
    return points
