"""Recipes: the settings of a run as a file (``ocdl solve --recipe NAME|FILE``).

A recipe is a small YAML file that names a model (a shipped model's name, or a path, relative to
the recipe's folder), a solver preset, the epochs, optionally the device and seed, and the
``--set`` settings, with a one-line description; a comment says what it measured. The shipped
recipes (:mod:`ocdl.recipes`, ``ocdl recipes`` lists them) are the best ones of
docs/RESULTS.md::

    description: the paper's MNIST FC net, ternary, 1.95 % non-zero, 20 epochs on a CPU
    model: mnist-fc-ternary
    solver: emsa-ternary
    epochs: 20
    set:
      data.augment: {crop: 2}
      alpha_end: 0.005
      nonzero_target: 0.0195

:meth:`Recipe.arguments` gives the arguments of :func:`ocdl.api.solve`: what the command line
gives replaces the recipe's key by key (a MODEL, ``--epochs``, ``--device``, ``--seed``, each
``--set`` key); ``--solver`` with another preset replaces the recipe's solver and drops its
solver settings (its ``data.`` and ``run.`` settings stay), as ``--like`` does. A recipe is read
with the spec's safe YAML reader and checked when it is loaded: an unknown key, a value of the
wrong type or a setting the solver does not have is one line that names the file and the line.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import shipped
from ..errors import ConfigError, OcdlError, SpecError, did_you_mean
from .overrides import split_overrides

PACKAGE = "ocdl.recipes"
LISTING = "ocdl recipes"
KEYS = ("description", "model", "solver", "epochs", "device", "seed", "set")
"""The keys of a recipe file; ``description`` and ``model`` are required."""


@dataclass(frozen=True)
class Recipe:
    """A recipe file, read and checked (see the module docstring)."""

    name: str                       # the file's stem
    path: Path
    description: str
    model: str                      # as written: a shipped model's name or a path
    solver: str | None = None       # None: the E-MSA preset for the model's control sets
    epochs: int | None = None
    device: str | None = None
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the ``set:`` block, --set keys

    def model_path(self) -> Path:
        """The model's spec file: a path relative to the recipe's folder when that file
        exists, else as :func:`ocdl.models.resolve_model` reads it (a path, or a shipped name)."""
        from ..models import resolve_model
        beside = self.path.parent / self.model
        return beside if beside.is_file() else resolve_model(self.model)

    def arguments(self, *, model: Any = None, solver: str | None = None,
                  overrides: Mapping[str, Any] | None = None, epochs: int | None = None,
                  device: str | None = None, seed: int | None = None) -> dict[str, Any]:
        """The arguments of :func:`ocdl.api.solve` (``model``, ``solver``, ``overrides``,
        ``epochs``, ``device``, ``seed``): the recipe's, each replaced by the one given."""
        settings = dict(self.settings)
        if solver is not None and self.solver is not None and str(solver) != self.solver:
            settings = {k: v for k, v in settings.items()  # another solver: its settings go
                        if k.partition(".")[0] in ("data", "run") and "." in k}
        return {"model": self.model_path() if model is None else model,
                "solver": self.solver if solver is None else solver,
                "overrides": {**settings, **dict(overrides or {})},
                "epochs": self.epochs if epochs is None else epochs,
                "device": self.device if device is None else device,
                "seed": self.seed if seed is None else seed}


def recipe_names() -> list[str]:
    """Names of the shipped recipes, sorted."""
    return shipped.names(PACKAGE)


def resolve_recipe(ref: str | Path) -> Path:
    """The recipe file ``ref`` names: an existing file, else a shipped recipe's name."""
    return shipped.find(PACKAGE, ref, what="recipe", listing=LISTING, error=ConfigError)


def load_recipe(ref: str | Path) -> Recipe:
    """Read and check the recipe ``ref`` (a file or a shipped recipe's name); every error is a
    one-line :class:`ConfigError` that names the file and the line."""
    from ..modelspec.yaml_io import parse_yaml, read_utf8
    path = resolve_recipe(ref)
    try:
        data, lines = parse_yaml(read_utf8(path), str(path))
    except OSError as e:
        raise ConfigError(f"cannot read recipe {path}: {e.strerror or e}") from None
    except SpecError as e:
        raise ConfigError(f"{e} (in a recipe)") from None

    def fail(key: str, what: str) -> ConfigError:
        line = lines.get(key) or lines.get(key.partition(".")[0]) or lines.get("", 1)
        return ConfigError(f"{path}:{line}: {what}")

    _check_fields(data, fail)
    recipe = Recipe(name=path.stem, path=path, description=" ".join(data["description"].split()),
                    model=data["model"], solver=data.get("solver"), epochs=data.get("epochs"),
                    device=data.get("device"), seed=data.get("seed"),
                    settings={str(k): v for k, v in (data.get("set") or {}).items()})
    _check_run(recipe, fail)
    return recipe


def _check_fields(data: Any, fail: Callable[[str, str], ConfigError]) -> None:
    """The recipe's keys and the types of their values (``fail(key, what)`` makes the error)."""
    if not isinstance(data, dict):
        raise fail("", "a recipe is a mapping with 'description:', 'model:' and the run's "
                       "settings (solver, epochs, device, seed, set)")
    for key in data:
        if key not in KEYS:
            raise fail(str(key), f"unknown key '{key}'{did_you_mean(str(key), KEYS)}; a recipe "
                                 f"has {', '.join(KEYS)}")
    for key in ("description", "model"):
        if key not in data:
            raise fail("", f"'{key}:' is missing; a recipe names its model and says in one line "
                           "what it trains")
    for key in ("description", "model", "solver", "device"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise fail(key, f"'{key}' must be a text, got {data[key]!r}")
    for key, least in (("epochs", 1), ("seed", 0)):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            raise fail(key, f"'{key}' must be a whole number ≥ {least}, got {v!r}")
    if not isinstance(data.get("set") or {}, dict):
        raise fail("set", "'set' is a mapping of --set settings, e.g. 'set: {alpha_end: 0.005, "
                          "data.augment: {crop: 2}}'")


def _check_run(recipe: Recipe, fail: Callable[[str, str], ConfigError]) -> None:
    """The recipe's model, solver and settings, as far as they can be judged before a run."""
    try:
        recipe.model_path()
    except OcdlError as e:
        raise fail("model", str(e)) from None
    solver = None
    if recipe.solver is not None:
        try:
            solver = _make_solver(recipe.solver, {})
        except OcdlError as e:
            raise fail("solver", str(e)) from None
    for key, value in recipe.settings.items():
        try:
            check_setting(key, value, solver)
        except OcdlError as e:
            raise fail(f"set.{key}", str(e)) from None
    own = split_overrides(recipe.settings).solver
    if solver is not None and own:  # the values together (one may need another)
        try:
            _make_solver(recipe.solver, own)
        except OcdlError as e:
            named = [k for k in recipe.settings if k.partition(".")[0] not in ("data", "run")
                     and f"'{solver.layout.path_to_flat(k.removeprefix('solver.'))}'" in str(e)]
            raise fail(f"set.{named[0]}" if named else "set", str(e)) from None


def check_setting(key: str, value: Any, solver: Any = None) -> None:
    """Check one ``--set`` setting on its own: its key, and its value where it can be judged
    without the model (whether the dataset has that many images is checked when the run loads
    it); a solver setting's name against ``solver`` (a solver object) when one is given."""
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"setting '{key}': empty key; write e.g. alpha_end or data.limit")
    routed = split_overrides({key: value})
    if routed.run and "device" not in routed.run:
        from .options import run_options
        run_options(settings=routed.run)
    for k, v in routed.data.items():
        from ..data.options import data_options_from_dict
        head, _, rest = k.partition(".")
        block: dict[str, Any] = {"name": "mnist-subset"}
        block[head] = {rest: v} if rest else v
        try:
            data_options_from_dict(block, "data")
        except SpecError as e:
            raise ConfigError(f"setting {e}") from None
    if solver is not None:
        for k in routed.solver:
            solver.layout.path_to_flat(k)


def _make_solver(name: str, settings: dict[str, Any]) -> Any:
    from ..solvers import make_solver
    return make_solver(name, settings)
