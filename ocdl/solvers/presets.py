"""Solver presets: YAML files under the repository's top-level ``solvers/`` folder (a source
checkout or editable install), installed as ``<prefix>/share/ocdl/solvers`` by a wheel.

A preset names a registered solver class and sets some of its hyperparameters, each value
commented with its source:

    # solvers/emsa-ternary.yaml
    solver: emsa                 # registered class (ocdl.solvers.SOLVERS)
    description: E-MSA for ternary networks (Li & Hao 2018)
    rho: 0.25                    # Li & Hao (2018), ternary
    sets: [ternary, real]        # refuse other finite sets

Numbers written like ``1e-7`` (text in YAML 1.1) are read as numbers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SolverError

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))

RESERVED = ("solver", "description")


def preset_dirs() -> list[Path]:
    """Where presets may be: the repository's ``solvers/`` folder (next to the ``ocdl``
    package: a source checkout or editable install), then ``<sys.prefix>/share/ocdl/solvers``
    (where a wheel installs them, see pyproject's data-files)."""
    import sys

    import ocdl
    pkg = Path(ocdl.__file__).parent if getattr(ocdl, "__file__", None) else \
        Path(__file__).resolve().parent.parent
    return [pkg.parent / "solvers", Path(sys.prefix) / "share" / "ocdl" / "solvers"]


def presets_dir() -> Path:
    """The first folder of :func:`preset_dirs` that exists (the first one if none does)."""
    dirs = preset_dirs()
    return next((d for d in dirs if d.is_dir()), dirs[0])


def preset_names() -> list[str]:
    """Names of the presets found in :func:`presets_dir` (file stems), sorted."""
    d = presets_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    """The file of preset ``name``, or None."""
    p = presets_dir() / f"{name}.yaml"
    return p if p.is_file() else None


def read_preset(path: str | Path) -> dict[str, Any]:
    """Parse and check a preset file: a mapping with a string ``solver`` key."""
    p = Path(path)
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise SolverError(f"solver preset file not found: {p}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise SolverError(f"{where}: YAML syntax error in solver preset: "
                          f"{getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("solver"), str):
        raise SolverError(f"{p}: a solver preset is a mapping with 'solver: <name>' and its "
                          "settings, e.g. 'solver: emsa' and 'rho: 0.5'")
    return data
