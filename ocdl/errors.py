"""Errors that users see.

Every error a user can cause is an :class:`OcdlError`: one line that says what went wrong,
where (file, line, field path) and how to fix it. The CLI prints ``str(err)`` and exits non-zero,
never a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


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
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"

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


class DivergenceError(OcdlError):
    """A run produced NaN or inf; the last good checkpoint is kept."""

    exit_code = 3


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` if none is close."""
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
