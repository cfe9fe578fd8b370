"""Starting a new run with the settings of a recorded one (``ocdl solve --like RUN``).

A run folder's ``config.yaml`` holds everything that made the run: the model spec as trained
(its ``data:`` block with the run's data settings applied), the solver preset and its resolved
hyperparameters, the ``--set`` overrides and the loop options. :func:`load_like` turns it into the
bases of a fresh run, which the new command line then changes:

* the model: the recorded spec, or MODEL if one is given (the recorded ``data.`` settings are
  applied to it as well);
* the solver: the recorded preset with its recorded hyperparameters (not the preset's current
  defaults, so that a later change of a preset does not change a rerun); ``--solver`` starts
  from that preset's current defaults instead, with the recorded solver settings if it is the
  same preset, without them if it is another (the data and loop settings stay either way);
* the loop options (epochs, seed, device, evaluation, time limit, precision): the recorded ones;
* then the new ``--set`` settings, ``--epochs``, ``--seed``, ``--device`` on top, key by key.

The solver's own ``seed`` follows the run's seed unless the recorded run set it explicitly, so
``--like RUN --seed 1`` is the recorded run with another seed. Nothing is continued: the new run
starts from a fresh initialisation in a new folder (``--resume`` continues a run).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OcdlError
from ..modelspec.model import ModelSpec
from .options import RunOptions
from .overrides import split_overrides
from .folder import CONFIG, read_config


@dataclass
class Like:
    """The bases of a run started ``--like`` a recorded one (see the module docstring)."""

    source: Path                    # the config.yaml read
    model: ModelSpec                # the recorded spec, or the MODEL given
    solver: str                     # the preset to use
    solver_base: dict[str, Any]     # hyperparameters under the new solver settings
    run_base: RunOptions            # loop options under the new run settings and arguments
    overrides: dict[str, Any]       # recorded overrides (those that still apply) ← new ones


def config_path(run: str | Path) -> Path:
    """``RUN/config.yaml`` for a run folder, or ``RUN`` itself for a YAML file."""
    p = Path(run)
    if p.is_dir():
        p = p / CONFIG
        if not p.is_file():
            raise ConfigError(f"--like {run}: no config.yaml in that folder; give a run folder "
                              "written by ocdl solve, or its config.yaml")
    elif not p.is_file():
        raise ConfigError(f"--like {run}: no such run folder or file")
    return p


def load_like(run: str | Path, make_solver: Callable[[str, dict[str, Any]], Any], *,
              model: ModelSpec | None = None, solver: str | None = None,
              overrides: Mapping[str, Any] | None = None) -> Like:
    """The bases of a new run like the recorded ``run`` (a run folder or its ``config.yaml``),
    changed by the ``model``, ``solver`` and ``overrides`` given (see the module docstring).
    ``make_solver(name, hp)`` checks that the recorded hyperparameters still fit the preset."""
    path = config_path(run)
    config = read_config(path, what="--like: ")
    recorded = config.get("overrides") or {}
    hp = config["solver"].get("hp") or {}
    if not isinstance(recorded, dict) or not isinstance(hp, dict):
        raise ConfigError(f"--like: {path}: 'overrides' and 'solver.hp' must be mappings; "
                          "restore the file from a copy")
    recorded, hp = dict(recorded), dict(hp)
    name = config["solver"]["name"]
    if solver is not None:  # the preset's current defaults
        if str(solver) != name:  # another solver: the recorded solver settings go too
            recorded = {k: v for k, v in recorded.items()
                        if str(k).partition(".")[0] in ("data", "run") and "." in str(k)}
        name, hp = str(solver), {}
    explicit_seed = any(k in ("seed", "solver.seed") for k in recorded)
    if "seed" in hp and not explicit_seed:
        del hp["seed"]  # follows the run's seed (see the module docstring)
    if model is None:
        try:
            model = config.spec()
        except OcdlError as e:
            raise ConfigError(f"--like: {e}; or give the model file too: ocdl solve MODEL "
                              "--like RUN") from None
        source = config.get("model_file")  # the new run records the file the spec came from
        model = dataclasses.replace(model, source=source if isinstance(source, str) else None)
    try:
        make_solver(name, hp)
    except OcdlError as e:
        raise ConfigError(f"--like: the solver settings recorded in {path} do not fit this "
                          f"ocdl ({e}); give --solver {name} to start from the preset's "
                          "current defaults") from None
    fields = RunOptions.__dataclass_fields__
    run_base = RunOptions(**{k: v for k, v in config["run"].items() if k in fields})
    try:
        split_overrides(recorded)
    except ConfigError as e:
        raise ConfigError(f"--like: the overrides recorded in {path}: {e}") from None
    return Like(source=path, model=model, solver=name, solver_base=hp, run_base=run_base,
                overrides={**recorded, **dict(overrides or {})})
