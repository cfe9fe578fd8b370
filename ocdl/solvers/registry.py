"""Finding solvers: by package scanning, entry points, or a user's file; presets first.

Solver classes join :data:`~ocdl.solvers.base.SOLVERS` with ``@register_solver`` when their
module is imported, and nothing lists those modules by hand:

* every module of :mod:`ocdl.solvers.methods` is imported with the package (:func:`discover`);
* an installed package may add solvers under the entry-point group ``ocdl.solvers``
  (``[project.entry-points."ocdl.solvers"] mine = "my_pkg.my_solver"``, a module or a class),
  loaded on the first look-up;
* a preset may name the file of its solver, ``module: my_solver.py`` (relative to the preset),
  which is then imported: the user's own code, run because the preset asks for it.

``make_solver("emsa-ternary")`` reads the shipped preset ``emsa-ternary.yaml``, builds the class
it names with the preset's settings, then ``overrides`` on top (flat names such as
``nonzero_target``, dotted paths such as ``sparsity.target``, or blocks; where one setting comes
twice in ``overrides``, under two names, the later wins). A path to a YAML file
works the same; a registered class name without a preset (e.g. ``adamw``) uses the class
defaults.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..errors import SolverError, did_you_mean
from .base import SOLVERS, Solver, register_solver
from .presets import RESERVED, preset_names, preset_path, read_preset

GROUP = "ocdl.solvers"
"""The entry-point group of third-party solvers."""

_plugins: dict[str, str] | None = None  # entry point → "" (loaded) or its error


def discover() -> None:
    """Import every module of :mod:`ocdl.solvers.methods` (registering their solvers)."""
    from . import methods
    for m in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f"{methods.__name__}.{m.name}")


def load_plugins() -> dict[str, str]:
    """Load the entry points of group :data:`GROUP` once; a module registers its solvers by
    importing, a :class:`Solver` subclass is registered. Returns entry point → "" or the error
    of one that failed (also a warning; the other solvers stay usable)."""
    global _plugins
    if _plugins is None:
        _plugins = {}
        for ep in entry_points(group=GROUP):
            try:
                obj = ep.load()
                if isinstance(obj, type) and issubclass(obj, Solver):
                    register_solver(obj)
                _plugins[ep.name] = ""
            except Exception as e:  # a broken plugin must not take the others down
                _plugins[ep.name] = f"{type(e).__name__}: {e}"
                warnings.warn(f"solver plugin '{ep.name}' ({ep.value}) failed to load: "
                              f"{_plugins[ep.name]}", stacklevel=2)
    return _plugins


def load_module(ref: str, preset: Path | None = None) -> None:
    """Import the module of a preset's ``module:`` — a ``.py`` path (relative to the preset's
    folder) or a module name — so that its solvers register. A file is imported under a name
    made from its path, once per version of the file."""
    if not (ref.endswith(".py") or "/" in ref):
        try:
            importlib.import_module(ref)
        except ImportError as e:
            raise SolverError(f"{preset}: cannot import solver module '{ref}': {e}") from None
        return
    path = Path(ref).expanduser()
    if not path.is_absolute() and preset is not None:
        path = Path(preset).parent / path
    path = path.resolve()
    if not path.is_file():
        raise SolverError(f"{preset}: solver module file not found: {path}")
    digest = hashlib.sha1(f"{path}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    name = f"ocdl_solver_file_{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as e:
        del sys.modules[name]
        raise SolverError(f"{path}: loading the solver module failed: "
                          f"{type(e).__name__}: {e}") from e


def _names() -> list[str]:
    presets = preset_names()
    return presets + sorted(n for n in SOLVERS if n not in presets)


def _unknown(ref: str) -> SolverError:
    failed = {k: v for k, v in load_plugins().items() if v}
    extra = ("; plugins that failed to load: "
             + ", ".join(f"{k} ({v})" for k, v in failed.items())) if failed else ""
    return SolverError(f"unknown solver '{ref}'{did_you_mean(ref, _names())}; available: "
                       f"{', '.join(_names())}{extra}")


def make_solver(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Solver:
    """Build a solver from a preset name, a preset file path, or a registered class name.

    Raises :class:`SolverError` for an unknown name (listing the available ones, with a
    did-you-mean), a malformed preset, an unknown setting or a bad value.
    """
    load_plugins()
    ref = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or ref.endswith((".yaml", ".yml")) or "/" in ref
    if is_path:
        path: Any = Path(ref)
        if not path.is_file():
            raise SolverError(f"solver preset file not found: {ref}; available presets: "
                              f"{', '.join(preset_names())}")
    else:
        path = preset_path(ref)
    if path is not None:
        data = read_preset(path)
        if "module" in data:
            load_module(data["module"], path if isinstance(path, Path) else None)
        cls_name = data["solver"]
        if cls_name not in SOLVERS:
            raise SolverError(f"{path}: unknown solver class '{cls_name}'"
                              f"{did_you_mean(cls_name, SOLVERS)}; registered: "
                              f"{', '.join(sorted(SOLVERS))}")
        cls = SOLVERS[cls_name]
        try:
            settings = cls.layout.flatten({k: v for k, v in data.items() if k not in RESERVED})
        except SolverError as e:
            raise SolverError(f"{path}: {e}") from None
    elif ref in SOLVERS:
        cls, settings = SOLVERS[ref], {}
    else:
        raise _unknown(ref)
    if overrides:
        if not isinstance(overrides, dict):
            raise SolverError(f"solver overrides must be a mapping of settings, got "
                              f"{overrides!r}")
        settings = {**settings, **cls.layout.flatten(overrides, strict=False)}
    return cls(**settings)


def list_solvers() -> list[str]:
    """Names ``make_solver`` accepts: the presets, then registered classes without a preset."""
    load_plugins()
    return _names()


def solver_info(name: str) -> dict[str, Any]:
    """``{name, solver, description, settings, blocks, supports}`` for a preset or class name
    (for ``ocdl solvers``-style listings): ``settings`` by flat name, ``blocks`` nested."""
    s = make_solver(name)
    path = preset_path(name)
    desc = read_preset(path).get("description", s.doc) if path else s.doc
    return {"name": name, "solver": s.name, "description": desc, "settings": dict(s.hp),
            "blocks": s.layout.nest(s.hp), "supports": list(s.accepted_kinds())}
