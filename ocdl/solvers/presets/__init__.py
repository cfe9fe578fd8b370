"""Solver presets: the YAML files of this package (package data, so that a wheel installed
anywhere has them; found with :mod:`importlib.resources`), or a user's file given by path.

A preset names a registered solver class and sets some of its settings, in the blocks of the
solver's parts (:mod:`ocdl.solvers.settings`), each value commented with its source; flat names
and dotted paths are accepted too:

    # ocdl/solvers/presets/emsa-ternary.yaml
    solver: emsa                 # registered class (ocdl.solvers.SOLVERS)
    description: E-MSA for ternary networks (Li & Hao 2018)
    sets: [ternary, real]        # refuse other finite sets
    error_control:
      rho: 0.25                  # [rho] Li & Hao (2018), ternary

``module: my_solver.py`` (a path relative to the preset's folder, or a module name) makes the
preset load the solver class it names from a file of the user's own: one file and one preset
add a solver (docs/adding-a-solver.md). Presets are read with the spec's YAML reader
(:func:`ocdl.modelspec.yaml_io.parse_yaml`): numbers written like ``1e-7`` are numbers.
"""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ...errors import SolverError, SpecError

RESERVED = ("solver", "description", "module")


def presets_dir() -> Traversable:
    """The folder of the shipped presets (this package's data)."""
    return resources.files(__name__)


def preset_names() -> list[str]:
    """Names of the shipped presets (file stems), sorted."""
    return sorted(p.name[:-len(".yaml")] for p in presets_dir().iterdir()
                  if p.name.endswith(".yaml"))


def preset_path(name: str) -> Traversable | None:
    """The file of the shipped preset ``name``, or None."""
    p = presets_dir() / f"{name}.yaml"
    return p if p.is_file() else None


def read_preset(path: str | Path | Traversable) -> dict[str, Any]:
    """Parse and check a preset file: a mapping with a string ``solver`` key."""
    from ...modelspec.yaml_io import parse_yaml, read_utf8
    p = Path(path) if isinstance(path, str) else path
    try:
        text = read_utf8(p) if isinstance(p, Path) else p.read_text(encoding="utf-8")
        data, _ = parse_yaml(text, str(p))
    except FileNotFoundError:
        raise SolverError(f"solver preset file not found: {p}") from None
    except OSError as e:
        raise SolverError(f"cannot read solver preset {p}: {e.strerror or e}") from None
    except SpecError as e:  # YAML syntax, damaged text, nesting or size beyond the limits
        raise SolverError(f"{e} (in a solver preset)") from None
    if not isinstance(data, dict) or not isinstance(data.get("solver"), str):
        raise SolverError(f"{p}: a solver preset is a mapping with 'solver: <name>' and its "
                          "settings, e.g. 'solver: emsa' and 'error_control: {rho: 0.5}'")
    if "module" in data and not isinstance(data["module"], str):
        raise SolverError(f"{p}: 'module' names the file (or module) of the solver class, "
                          f"e.g. 'module: my_solver.py', got {data['module']!r}")
    return data
