"""The shipped model specs: the YAML files of this package (package data, so that a wheel
installed anywhere has them), and the resolver of every MODEL argument.

Every command and function that takes a MODEL takes a path or a shipped model's name::

    ocdl solve quickstart --epochs 5          # ocdl/models/quickstart.yaml
    ocdl solve my-net.yaml                    # a file of the user's own
    ocdl models show quickstart > my.yaml     # a copy to edit

A path to an existing file wins over a name; an unknown name is a :class:`ConfigError` of one
line with the closest name and the list (``ocdl models`` lists them with their descriptions).
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import shipped
from ..errors import ConfigError, SpecError, cut

__all__ = ["model_names", "model_path", "model_summary", "resolve_model"]

LISTING = "ocdl models"


def model_names() -> list[str]:
    """Names of the shipped models (file stems), sorted."""
    return shipped.names(__name__)


def resolve_model(ref: str | Path) -> Path:
    """The spec file a MODEL argument names: ``ref`` itself when it is an existing file, else the
    shipped model of that name; otherwise a one-line :class:`ConfigError`."""
    return shipped.find(__name__, ref, what="model", listing=LISTING, error=ConfigError)


def model_path(name: str) -> Path:
    """The file of the shipped model ``name`` (e.g. ``model_path("quickstart")``)."""
    path = shipped.path_of(__name__, name)
    if path is None:
        return resolve_model(name)  # raises the one-line error with the list
    return path


def model_summary(text: str, width: int = 100) -> str:
    """One line that says what the spec ``text`` is: the first sentence of its
    ``description:``, else of its opening comment; at most ``width`` characters."""
    from ..modelspec.yaml_io import parse_yaml
    try:
        data, _ = parse_yaml(text, "<model>")
    except SpecError:
        data = None
    desc = data.get("description") if isinstance(data, dict) else None
    if not isinstance(desc, str) or not desc.strip():
        lines = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
        desc = " ".join(lines)
    desc = " ".join(desc.split())
    first = re.split(r"(?<=[.:])\s", desc, maxsplit=1)[0].rstrip(".:")
    return cut(first, width)
