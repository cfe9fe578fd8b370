"""Finding solvers by name: presets first, then registered classes.

``make_solver("emsa-ternary")`` reads ``solvers/emsa-ternary.yaml``, builds the registered class it
names with the preset's settings, then ``overrides`` on top. A path to a YAML file works the same;
a registered class name without a preset file (e.g. ``adamw``) uses the class defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SolverError, did_you_mean
from .base import SOLVERS, Solver
from .presets import RESERVED, preset_names, preset_path, read_preset


def _names() -> list[str]:
    presets = preset_names()
    return presets + sorted(n for n in SOLVERS if n not in presets)


def make_solver(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Solver:
    """Build a solver from a preset name, a preset file path, or a registered class name.

    Raises :class:`SolverError` for an unknown name (listing the available ones, with a
    did-you-mean), a malformed preset, an unknown setting or a bad value.
    """
    ref = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or ref.endswith((".yaml", ".yml")) or "/" in ref
    if is_path:
        path: Path | None = Path(ref)
        if not path.is_file():
            raise SolverError(f"solver preset file not found: {ref}; available presets: "
                              f"{', '.join(preset_names())}")
    else:
        path = preset_path(ref)
    if path is not None:
        data = read_preset(path)
        cls_name = data["solver"]
        if cls_name not in SOLVERS:
            raise SolverError(f"{path}: unknown solver class '{cls_name}'"
                              f"{did_you_mean(cls_name, SOLVERS)}; registered: "
                              f"{', '.join(sorted(SOLVERS))}")
        settings = {k: v for k, v in data.items() if k not in RESERVED}
    elif ref in SOLVERS:
        cls_name, settings = ref, {}
    else:
        raise SolverError(f"unknown solver '{ref}'{did_you_mean(ref, _names())}; available: "
                          f"{', '.join(_names())}")
    if overrides:
        if not isinstance(overrides, dict):
            raise SolverError(f"solver overrides must be a mapping of settings, got "
                              f"{overrides!r}")
        settings = {**settings, **overrides}
    return SOLVERS[cls_name](**settings)


def list_solvers() -> list[str]:
    """Names ``make_solver`` accepts: the presets, then registered classes without a preset."""
    return _names()


def solver_info(name: str) -> dict[str, Any]:
    """``{name, solver, description, settings, supports}`` for a preset or class name (for
    ``ocdl solvers``-style listings)."""
    s = make_solver(name)
    path = preset_path(name)
    desc = read_preset(path).get("description", s.doc) if path else s.doc
    return {"name": name, "solver": s.name, "description": desc, "settings": dict(s.hp),
            "supports": list(s.accepted_kinds())}
