"""Param groups tagged with control sets, from a module and rules by module type or name.

    ocdl.optim.groups(model, {"Linear": ocdl.Ternary(), "fc_out": ocdl.Binary()},
                      default=ocdl.Real())

gives one param group per distinct rule, ``{"params": [(name, p), …], "control": set, …}``
(named parameters, so the optimizer's metrics and errors name them, and torch keeps
``param_names``). A rule's key is matched against each parameter's qualified name
(``fc_out.weight``), its module's qualified name (``fc_out``), then its module's class name
(``Linear``) — the most specific match wins. A module rule sets the control of the module's
``weight``; its other parameters (a bias) take ``default``. A rule's value is a control set, or
a dict of group options with the set under ``control`` (``{"control": ocdl.Ternary(), "l1":
1e-7}``). Every rule must match a parameter (a misspelt name is an error); groups come in the
order of the model's parameters.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError, did_you_mean, short


def _options(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, ControlSet):
        return {"control": value}
    if isinstance(value, Mapping) and isinstance(value.get("control"), ControlSet):
        return dict(value)
    raise SolverError(f"ocdl.optim.groups: rule {key!r} must map to a control set such as "
                      f"ocdl.Ternary(), or to a dict with one under 'control', got {short(value)}")


def groups(model: torch.nn.Module, rules: Mapping[str, Any],
           default: Any = Real()) -> list[dict[str, Any]]:
    """Param groups of ``model``'s trainable parameters by ``rules`` (see the module
    docstring); the parameters no rule matches go to ``default``."""
    base = _options("default", default)
    rules = {k: _options(k, v) for k, v in rules.items()}
    owner: dict[str, torch.nn.Module] = dict(model.named_modules())
    used: set[str] = set()
    out: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for qual, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mod_name, _, attr = qual.rpartition(".")
        module = owner.get(mod_name, model)
        key = None
        if qual in rules:
            key = qual
        elif attr == "weight" and mod_name in rules:
            key = mod_name
        elif attr == "weight" and type(module).__name__ in rules:
            key = type(module).__name__
        opts = rules[key] if key is not None else base
        if key is not None:
            used.add(key)
        tag = key if key is not None else "\0default"
        if tag not in index:
            index[tag] = len(out)
            out.append({"params": [], **opts})
        out[index[tag]]["params"].append((qual, p))
    unused = [k for k in rules if k not in used]
    if unused:
        names = [q for q, _ in model.named_parameters()] + list(owner) + \
            sorted({type(m).__name__ for m in owner.values()})
        hint = did_you_mean(unused[0], [n for n in names if n])
        raise SolverError(f"ocdl.optim.groups: rule(s) {unused} match no parameter of the model"
                          f"{hint}; a key is a parameter's name (fc.weight), a module's name (fc)"
                          f" or a module class (Linear)")
    return out
