"""Names of a package imported on first use (PEP 562), so that importing the package does not
load what only some of its callers need (torch's compiled code, sympy, PIL)."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: the name ``n`` is imported from the submodule
    ``where[n]`` on first use and kept in the package, so later lookups are plain attributes.
    ``where[n] == "."`` names the submodule ``n`` itself (``ocdl.optim``)."""
    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if where[name] == ".":
            value = importlib.import_module(f"{package}.{name}")
        else:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value
    return __getattr__
