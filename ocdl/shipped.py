"""Files shipped inside the package (package data: a wheel installed anywhere has them), found by
name with :mod:`importlib.resources`: the model specs of :mod:`ocdl.models` and the recipes of
:mod:`ocdl.recipes`.

Where a command takes a shipped file, it takes a path too: :func:`find` reads ``ref`` as a path
when that file exists, else as a shipped name, and refuses anything else with one line that says
what was given, suggests the closest name and lists the shipped ones.
"""
from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import OcdlError, did_you_mean

SUFFIX = ".yaml"

_extracted = contextlib.ExitStack()  # files copied out of a zipped install, removed at exit
atexit.register(_extracted.close)


def folder(package: str) -> Traversable:
    """The folder of ``package``'s data files."""
    return resources.files(package)


def names(package: str) -> list[str]:
    """The names (file stems) of the YAML files shipped in ``package``, sorted."""
    return sorted(p.name[:-len(SUFFIX)] for p in folder(package).iterdir()
                  if p.name.endswith(SUFFIX) and not p.name.startswith("."))


def as_path(file: Traversable) -> Path:
    """A file system path of the shipped ``file``: the file itself in an ordinary install, a
    copy (removed when the process ends) where the package is read from a zip archive."""
    if isinstance(file, Path):
        return file
    return _extracted.enter_context(resources.as_file(file))


def path_of(package: str, name: str) -> Path | None:
    """The shipped file ``name`` of ``package``, or None."""
    file = folder(package) / f"{name}{SUFFIX}"
    return as_path(file) if file.is_file() else None


def find(package: str, ref: str | Path, *, what: str, listing: str,
         error: type[OcdlError]) -> Path:
    """The file ``ref`` names: a path to an existing file (which wins), or the name of a file
    shipped in ``package``. Otherwise ``error``, one line: ``what`` was not found, the closest
    shipped name and all of them, and the command ``listing`` that lists them."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    text = str(ref)
    if not isinstance(ref, Path) and "/" not in text and "\\" not in text:
        shipped = path_of(package, text)
        if shipped is not None:
            return shipped
    known = names(package)
    looks_like_path = isinstance(ref, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    if p.is_dir():
        head = f"{what} {text} is a folder; give a {what} file or the name of a shipped {what}"
    elif looks_like_path:
        head = (f"{what} file not found: {text}{did_you_mean(p.stem, known)}; give a path to a "
                f"YAML file or the name of a shipped {what}")
    else:
        head = (f"unknown {what} '{text}'{did_you_mean(text, known)}: neither a file nor a "
                f"shipped {what}")
    raise error(f"{head}; the shipped {what}s ({listing} lists them): {', '.join(known)}")
