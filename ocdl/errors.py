"""Errors that users see.

Every error a user can cause is an :class:`OcdlError`: one line that says what went wrong,
where (file, line, field path) and how to fix it. The CLI prints ``str(err)`` and exits non-zero,
never a traceback.
"""
from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

#: the longest message a :class:`SpecError` prints (longer ones are cut, ending in '…')
MAX_MESSAGE = 400
#: the longest field path a :class:`SpecError` prints
MAX_PATH = 120


class OcdlError(Exception):
    """Base class of all user-facing errors. ``str(err)`` is the one-line message."""

    exit_code = 2


class SpecError(OcdlError):
    """A model spec is malformed or violates the schema.

    ``file`` and ``line`` locate the offending value when the spec came from YAML; ``path`` is
    the field path such as ``stages[3].units``.
    """

    def __init__(self, message: str, *, path: str = "", file: str | None = None,
                 line: int | None = None):
        self.message = message
        self.path = path
        self.file = file
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        field = f"{cut(self.path, MAX_PATH)}: " if self.path else ""
        return f"{where}{field}{cut(self.message, MAX_MESSAGE)}"

    def located(self, file: str | None, line: int | None) -> "SpecError":
        """Return a copy of this error that names ``file`` and ``line``."""
        return SpecError(self.message, path=self.path, file=file, line=line)


class ShapeError(SpecError):
    """Shapes of connected stages do not fit."""


class DataError(OcdlError):
    """A dataset is missing, corrupt, or its options are invalid."""


class SolverError(OcdlError):
    """A solver cannot run on the given system or its settings are invalid."""


class ControlSetError(SolverError):
    """A control's set (binary, ternary, real, …) is not one the solver handles."""


class ModuleFormError(OcdlError):
    """A compiled system has no ``torch.nn.Module`` form (:meth:`ocdl.system.System.to_module`):
    an equation-defined problem, or a stage whose name torch reserves."""


class TorchImportError(OcdlError):
    """A ``torch.nn.Module`` cannot be turned into a model spec (:func:`ocdl.from_torch`): a
    layer, function or argument without an ocdl op, a module that torch.fx cannot trace, or
    control sets that name no layer. The message names the module path and the op."""


class DivergenceError(OcdlError):
    """A run produced NaN or inf; the last good checkpoint is kept."""

    exit_code = 3


class SpecDeprecationWarning(FutureWarning):
    """A spec uses a form that still works but will go (e.g. the running-cost key ``on``).

    A :class:`FutureWarning`, so that Python shows it to the people who write specs by default;
    the message names the file, the line and what to write instead."""


def cut(text: str, n: int) -> str:
    """``text`` cut to at most ``n`` characters, ending in '…' when cut; one line."""
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n - 1] + "…"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def short(value: Any, n: int = 60) -> str:
    """A short ``repr`` of a user's value for messages: nested containers elided, at most about
    ``n`` characters, ending in '…' when cut. Never fails (a huge integer is described)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 192:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    try:
        text = _REPR.repr(value)
    except Exception:  # a value whose repr fails: name its type
        text = f"<{type(value).__name__}>"
    return cut(text, n)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` if none is close."""
    word = word if isinstance(word, str) else short(word)
    if len(word) > 64:  # no suggestion for a long text (and no quadratic matching on it)
        return ""
    match = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class ConfigError(OcdlError):
    """A run setting (``--set``, ``--epochs``, ``--device``, ``--out``, ``--resume``, ``--like``)
    or a run folder's record (``config.yaml``) is invalid."""


class RunFolderBusy(ConfigError):
    """Another process holds the run folder's lock."""


class CheckpointError(OcdlError):
    """A checkpoint or controls file cannot be written or read (damaged, truncated, foreign,
    or one that only a full unpickle could read)."""


class CallbackError(OcdlError):
    """A run's callback (``ocdl.api.solve(callbacks=...)``) is not callable or raised; the
    message names it and the event, and says which checkpoints are kept."""


class RunInterrupted(OcdlError):
    """The run was stopped by Ctrl-C; ``str(err)`` says what was saved and how to resume."""

    exit_code = 130


class MissingPackageError(OcdlError):
    """An optional package that a feature needs is not installed (e.g. pandas for
    ``to_pandas()``); the message names the ``pip install`` that adds it."""


class DeployError(OcdlError):
    """A trained network cannot be exported (``ocdl export``), or an exported file cannot be
    read back (``ocdl evaluate FILE``): unknown format, no spec, tensors that do not fit."""


class PackedFileError(DeployError):
    """A file is not a readable ocdl packed file (:mod:`ocdl.deploy.packed_read`): foreign,
    damaged or truncated; the message names the file and what is wrong."""


class DistributedError(OcdlError):
    """A data-parallel run (torchrun, ``ocdl solve --nproc``) cannot start, or lost one of its
    processes; the message names the rank and says what is kept and how to resume."""
