"""``--set key=value`` settings: read as YAML values and routed by prefix.

* ``data.<key>`` (``data.batch_size=50``, ``data.split.train=50000``) → the spec's ``data:`` block,
  re-validated by :func:`ocdl.data.options.data_options_from_dict`;
* ``run.<key>`` (``run.log_every=10``) → the loop's :class:`ocdl.run.options.RunOptions`;
* ``solver.<key>``, a bare ``<key>`` (``rho=0.3``) or a solver block's dotted key
  (``sparsity.target=0.02``) → the solver's settings, checked by the solver itself.

Values are read as YAML scalars (``1e-7`` is a number, ``true`` a bool, ``[1, 2]`` a list).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, SpecError, did_you_mean
from ..modelspec.model import ModelSpec
from ..modelspec.yaml_io import parse_yaml
from .options import RUN_KEYS

def parse_value(text: str) -> Any:
    """A ``--set`` value read as YAML by the spec's reader (:func:`ocdl.modelspec.yaml_io.parse_yaml`:
    ``0.3`` and ``1e-7`` → float, ``true`` → bool, ``{crop: 2}`` → a mapping); text that is not
    YAML stays text, and an empty value is ``""``."""
    if not text.strip():
        return ""
    try:
        return parse_yaml(text, "--set")[0]
    except SpecError:
        return text


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["rho=0.3", "data.limit=2000"]`` → ``{"rho": 0.3, "data.limit": 2000}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set rho=0.3 or "
                              "--set data.batch_size=50")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key; expected key=value")
        out[key] = parse_value(value)
    return out


@dataclass
class SplitOverrides:
    """``--set`` settings sorted by destination."""

    solver: dict[str, Any]
    data: dict[str, Any]
    run: dict[str, Any]


def split_overrides(overrides: Mapping[str, Any] | None) -> SplitOverrides:
    """Route settings by prefix (see the module docstring); unknown ``run.`` keys are errors."""
    solver: dict[str, Any] = {}
    data: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        head, _, rest = str(key).partition(".")
        if head == "data" and rest:
            data[rest] = value
        elif head == "run" and rest:
            if rest not in RUN_KEYS:
                raise ConfigError(f"unknown run setting '{key}'"
                                  f"{did_you_mean(rest, RUN_KEYS)}; run settings: "
                                  f"{', '.join('run.' + k for k in RUN_KEYS)}")
            run[rest] = value
        elif head == "solver" and rest:
            solver[rest] = value
        elif head in ("data", "run", "solver"):
            raise ConfigError(f"setting '{key}' names no key; write e.g. {head}.<key>=value")
        else:  # rho=0.3, or a solver block's key sparsity.target=0.02: the solver checks it
            solver[str(key)] = value
    return SplitOverrides(solver=solver, data=data, run=run)


def _set_nested(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set data.{dotted}: data.{p} is {nxt!r}, not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def apply_data_overrides(spec: ModelSpec, data: Mapping[str, Any]) -> ModelSpec:
    """The spec with its ``data:`` block changed by ``data.<key>`` settings (re-validated)."""
    if not data:
        return spec
    if not spec.takes_data:
        raise ConfigError(f"model '{spec.name}' has no dataset (its samples are its initial "
                          f"states); drop the data. settings ({', '.join(sorted(data))})")
    from ..data.options import data_options_from_dict
    base: dict[str, Any] = (dataclasses.asdict(spec.data) if spec.data is not None else {})
    for k, v in data.items():
        _set_nested(base, k, v)
    if "name" not in base:
        raise ConfigError(f"model '{spec.name}' has no data: block; name a dataset with "
                          "--set data.name=mnist-subset (or add a data: block to the spec)")
    try:
        options = data_options_from_dict(base, "data")
    except SpecError as e:
        raise ConfigError(f"--set {e}") from None
    return dataclasses.replace(spec, data=options)
