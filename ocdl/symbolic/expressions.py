"""A safe parser of the expressions of equation-defined systems (``system:`` blocks and
``equation`` stages): text → sympy expression.

Expressions may use the states, controls, constants, ``t`` (the stage index) and the functions in
:data:`FUNCTIONS`. They are parsed by ``sympy.parsing.sympy_parser.parse_expr`` only after a token
check: numbers, known names, arithmetic operators, parentheses and commas are allowed; anything
else (attribute access, dunder names, strings, keywords such as ``lambda`` or ``import``,
subscripts) and every unknown name is a :class:`SpecError` naming the field. So is an expression
over the limits of :mod:`ocdl.limits`, checked before sympy sees it: its length, tokens and
nesting, the tokens of all expressions of a spec (:func:`expression_budget`), powers in
exponents, exponents above 1,000 and numbers of thousands of digits
(:mod:`ocdl.symbolic.expr_bounds`). sympy is imported only when an expression is parsed.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import keyword
import math
import tokenize
from collections.abc import Iterator
from typing import Any

from .. import limits
from ..errors import SpecError, did_you_mean, short
from .expr_bounds import check_bounds

FUNCTIONS = ("sin", "cos", "tan", "tanh", "exp", "log", "sqrt", "Abs", "abs", "Max", "max",
             "Min", "min", "relu", "sigmoid", "sign", "pi")
RESERVED = ("t", "S") + FUNCTIONS
_OPS = {"+", "-", "*", "/", "**", "(", ")", ",", "^"}


def _sympy_namespace() -> dict[str, Any]:
    import sympy as sp

    def relu(z):
        return sp.Max(0, z)

    def sigmoid(z):
        return 1 / (1 + sp.exp(-z))

    return {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "tanh": sp.tanh, "exp": sp.exp,
            "log": sp.log, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs, "Max": sp.Max,
            "max": sp.Max, "Min": sp.Min, "min": sp.Min, "relu": relu, "sigmoid": sigmoid,
            "sign": sp.sign, "pi": sp.pi}


def check_tokens(text: str, allowed: set[str], path: str) -> int:
    """Reject anything but numbers, names in ``allowed`` (plus :data:`FUNCTIONS`) and arithmetic,
    and expressions over the limits of :mod:`ocdl.limits` (characters, tokens, nesting);
    raise :class:`SpecError` at ``path`` naming the offending token. Returns the token count."""
    if len(text) > limits.MAX_EXPR_CHARS:
        raise SpecError(f"the expression has {len(text):,} characters; an expression has at most "
                        f"{limits.MAX_EXPR_CHARS:,}: split it with constants or simplify it",
                        path=path)
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as e:
        raise SpecError(f"cannot read the expression {short(text)}: {short(str(e), 80)}",
                        path=path) from None
    count = depth = 0
    for tok in toks:
        kind, s = tok.type, tok.string
        if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                    tokenize.DEDENT):
            continue
        count += 1
        if count > limits.MAX_EXPR_TOKENS:
            raise SpecError(f"the expression has more than {limits.MAX_EXPR_TOKENS:,} tokens "
                            "(numbers, names, operators); shorten it", path=path)
        if kind == tokenize.NUMBER:
            if s.lower().endswith(("j", "l")) or s.lower().startswith(("0x", "0o", "0b")):
                raise SpecError(f"unsupported number {short(s)} in {short(text)}", path=path)
            continue
        if kind == tokenize.NAME:
            _check_name(s, text, allowed, path)
            continue
        if kind == tokenize.OP and s in _OPS:
            depth += {"(": 1, ")": -1}.get(s, 0)
            if depth > limits.MAX_EXPR_NESTING:
                raise SpecError(f"parentheses nested more than {limits.MAX_EXPR_NESTING} deep in "
                                f"{short(text)}", path=path)
            continue
        if kind == tokenize.OP and s == ".":
            raise SpecError(f"attribute access ('.') is not allowed in an expression: "
                            f"{short(text)}", path=path)
        raise SpecError(f"{short(s)} is not allowed in an expression ({short(text)}); use "
                        "numbers, names, + - * / ** and function calls such as sin(x)", path=path)
    return count


def _check_name(s: str, text: str, allowed: set[str], path: str) -> None:
    if s.startswith("_") or "__" in s:
        raise SpecError(f"names starting with '_' (such as {short(s)}) are not allowed in "
                        f"expressions: {short(text)}", path=path)
    if keyword.iskeyword(s):
        raise SpecError(f"the Python keyword {short(s)} is not allowed in an expression: "
                        f"{short(text)}; write arithmetic of the states, controls and "
                        "constants", path=path)
    if s not in allowed and s not in FUNCTIONS:
        known = sorted(allowed)
        listed = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        raise SpecError(f"unknown symbol {short(s, 40)}"
                        f"{did_you_mean(s, known + list(FUNCTIONS))} in {short(text)}; "
                        f"known symbols: {listed}", path=path)


_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("ocdl_expr_budget",
                                                                          default=None)


@contextlib.contextmanager
def expression_budget() -> Iterator[None]:
    """Count the tokens of the expressions parsed inside (one spec's validation) against
    :data:`~ocdl.limits.MAX_SPEC_EXPR_TOKENS`."""
    token = _BUDGET.set([0])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend(n: int, path: str) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget[0] += n
    if budget[0] > limits.MAX_SPEC_EXPR_TOKENS:
        raise SpecError(f"the expressions of this spec have more than "
                        f"{limits.MAX_SPEC_EXPR_TOKENS:,} tokens together; shorten them",
                        path=path)


def parse_expression(text: Any, symbols: dict[str, Any], path: str,
                     constants: dict[str, float] | None = None):
    """Parse ``text`` (or a number) into a sympy expression over ``symbols`` (name → sympy
    object), safely (see the module docstring), after checking the limits of
    :mod:`ocdl.limits` and :mod:`ocdl.symbolic.expr_bounds` (``constants``: the values of the
    named constants among ``symbols``). Raises :class:`SpecError` at ``path``."""
    import sympy as sp
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise SpecError(f"expected an expression (text or a number), got {short(text)}", path=path)
    if not isinstance(text, str):
        if not math.isfinite(text) or abs(text) > limits.MAX_INT:
            raise SpecError(f"expected a finite number within ±{limits.MAX_INT:.3g}, got "
                            f"{short(text)}", path=path)
        return sp.Float(text) if isinstance(text, float) else sp.Integer(text)
    if not text.strip():
        raise SpecError("empty expression", path=path)
    _spend(check_tokens(text, set(symbols), path), path)
    check_bounds(text, constants or {}, path)
    try:
        expr = _sympy_parse(text, symbols)
    except SyntaxError as e:
        raise SpecError(f"syntax error in the expression {short(text)}: {short(str(e.msg), 80)}",
                        path=path) from None
    except (RecursionError, MemoryError):
        raise SpecError(f"the expression {short(text)} is too large or nested too deeply for "
                        "sympy; simplify it", path=path) from None
    except Exception as e:  # sympy raises many kinds on bad input (TypeError, ValueError, …)
        raise SpecError(f"bad expression {short(text)}: {short(str(e), 100)}", path=path) \
            from None
    if not isinstance(expr, sp.Expr):
        raise SpecError(f"the expression {short(text)} is not a number-valued formula", path=path)
    unknown = {str(s) for s in expr.free_symbols} - set(symbols)
    if unknown:
        raise SpecError(f"unknown symbol {short(sorted(unknown)[0], 40)} in {short(text)}",
                        path=path)
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan):
        raise SpecError(f"the expression {short(text)} is not real-valued", path=path)
    return expr


def _sympy_parse(text: str, symbols: dict[str, Any]):
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations
    local = {**_sympy_namespace(), **symbols}
    glob: dict[str, Any] = {}
    exec("from sympy import Integer, Float, Rational, Symbol", glob)  # names parse_expr emits
    return parse_expr(text, local_dict=local, global_dict=glob,
                      transformations=standard_transformations + (convert_xor,), evaluate=True)
