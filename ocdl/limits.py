"""The limits of a model spec, in one place.

Every spec, however malformed, is answered within about a second: it loads and compiles, or it
gets a one-line :class:`ocdl.errors.SpecError` that names the file, the line and the field. To
keep that promise the loader refuses, *before* doing the work, anything whose cost it cannot
bound: a huge file, deep nesting, alias bombs, long or deeply nested expressions, numbers that
would need thousands of digits, huge sizes and horizons, and networks whose controls do not fit
in memory. The limits are far above what a real model needs (the shipped models use a small
fraction of each); the README's "Limits of a model spec" and the JSON Schema (``ocdl schema``)
state them too.

=============================  =========================================================
limit                          what it bounds
=============================  =========================================================
:data:`MAX_SPEC_BYTES`         size of a spec file (bytes)
:data:`MAX_DEPTH`              nesting of mappings and lists (aliases expanded)
:data:`MAX_NODES`              values in the spec after expanding aliases (``*name``)
:data:`MAX_NUMBER_CHARS`       characters of a number written in the spec
:data:`MAX_INT`                any integer written in the spec (±)
:data:`MAX_SIZE`               a size: ``units``, ``channels``, kernel, stride, padding,
                               an ``input`` dimension, ``axis``
:data:`MAX_RANK`               dimensions of the ``input`` shape
:data:`MAX_STAGES`             stages of a network, inner residual stages included
:data:`MAX_STATE_NUMEL`        numbers per sample in the output of one stage
:data:`MAX_PARAM_GIB`          memory of all controls θ in the compile dtype (default GiB;
                               environment variable ``OCDL_MAX_PARAM_GIB``)
:data:`MAX_HORIZON`            horizon T of an equation-defined system
:data:`MAX_EQ_CONTROLS`        T × (number of controls) of an equation-defined system
:data:`MAX_NAMES`              states + controls + constants of a system or equation stage
:data:`MAX_EXPR_CHARS`         characters of one expression
:data:`MAX_EXPR_TOKENS`        tokens (numbers, names, operators) of one expression
:data:`MAX_SPEC_EXPR_TOKENS`   tokens of all expressions of a spec together
:data:`MAX_EXPR_NESTING`       nesting of parentheses and calls in an expression
:data:`MAX_DERIVATIVE_SIZE`    estimated terms of the costate equations of a system (the
                               derivatives of f, L and Φ by every state and control)
:data:`MAX_EXPONENT`           a constant exponent (``x**1000`` at most)
:data:`MAX_NUMBER_DIGITS`      digits of any number an expression's constants can produce
=============================  =========================================================
"""
from __future__ import annotations

import math
import os

from .errors import OcdlError

MAX_SPEC_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_NUMBER_CHARS = 100
MAX_INT = 2**63 - 1
MAX_SIZE = 1_000_000
MAX_RANK = 8
MAX_STAGES = 1_000
MAX_STATE_NUMEL = 1 << 28
MAX_PARAM_GIB = 8.0
PARAM_GIB_ENV = "OCDL_MAX_PARAM_GIB"
MAX_HORIZON = 10_000
MAX_EQ_CONTROLS = 10_000
MAX_NAMES = 100
MAX_EXPR_CHARS = 4_000
MAX_EXPR_TOKENS = 1_000
MAX_SPEC_EXPR_TOKENS = 2_000
MAX_EXPR_NESTING = 32
MAX_DERIVATIVE_SIZE = 5_000
MAX_EXPONENT = 1_000
MAX_NUMBER_DIGITS = 4_000  # below Python's 4300-digit limit on int <-> text conversion

GIB = 1 << 30


def max_param_bytes() -> int:
    """The parameter-memory limit in bytes: ``$OCDL_MAX_PARAM_GIB`` GiB if set (a positive
    number such as ``32`` or ``0.5``), else :data:`MAX_PARAM_GIB`."""
    raw = os.environ.get(PARAM_GIB_ENV, "").strip()
    if not raw:
        return int(MAX_PARAM_GIB * GIB)
    try:
        gib = float(raw)
    except ValueError:
        gib = float("nan")
    if not math.isfinite(gib) or gib <= 0:
        raise OcdlError(f"{PARAM_GIB_ENV}={raw[:40]!r} is not a positive number of GiB; set it "
                        "to e.g. 16, or unset it for the default "
                        f"{MAX_PARAM_GIB:g}")
    return int(gib * GIB)


def gib(n_bytes: float) -> str:
    """``n_bytes`` as GiB text for messages: ``12.5 GiB``, ``0.004 GiB``."""
    v = n_bytes / GIB
    return f"{v:.3g} GiB" if v < 100 else f"{v:,.0f} GiB"
