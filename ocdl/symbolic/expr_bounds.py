"""Static bounds on an expression, checked before sympy sees it.

sympy evaluates number arithmetic exactly and eagerly: ``9**9**9`` is a 370-million-digit
integer, and Python's big-integer arithmetic cannot be interrupted. So an expression that has
passed the token check (:func:`ocdl.symbolic.expressions.check_tokens`) is parsed with :mod:`ast` and
walked once, without recursion, to bound every number sympy could compute from it:

* no power inside an exponent (``x**y**z``, ``2**(x**2)``): write ``exp(...)`` instead;
* every exponent is at most :data:`~ocdl.limits.MAX_EXPONENT` in size;
* every number has at most :data:`~ocdl.limits.MAX_NUMBER_DIGITS` digits.

A number is bounded by the digits of its numerator ``M`` and denominator ``D`` (log10), worst
case: a state or control counts as 0 or 1 (``x - x`` and ``x/x`` cancel), a named constant by
its value, and

    a ± b:  M = max(Ma + Db, Mb + Da) + log10 2,  D = Da + Db
    a · b:  M = Ma + Mb,  D = Da + Db            a / b:  M = Ma + Db,  D = Da + Mb
    a ** b: |b| ≤ 10^Mb ≤ MAX_EXPONENT,  M = D = 10^Mb · max(Ma, Da)
    exp(a):  M = D = 10^Ma / ln 10 (sympy turns exp(n·log b) into b**n, and evaluates
             sin(exp(a)) or Max(exp(a), …) numerically, at a precision that grows with it)
    log(b):  M = log10(2.31 · max(Mb, Db))

so the check errs on the safe side only for numbers far beyond float64.
"""
from __future__ import annotations

import ast
import math
from decimal import Decimal

from ..errors import SpecError, cut
from ..limits import MAX_EXPONENT, MAX_NUMBER_DIGITS

_LOG2 = math.log10(2.0)
_LN10 = math.log(10.0)
_EXP_LIKE = ("exp", "sigmoid")
_POW_OPS = (ast.Pow, ast.BitXor)  # '^' is a power (sympy's convert_xor)


def _digits(value: float | str) -> tuple[float, float]:
    """(M, D) of a literal (its text) or of a constant's value: log10 of the value and of its
    inverse, whichever is positive."""
    try:
        d = Decimal(value.replace("_", "") if isinstance(value, str) else value).copy_abs()
        lg = float(d.log10()) if d else 0.0
    except (ArithmeticError, ValueError):  # an exponent beyond Decimal's range
        return float("inf"), float("inf")
    return max(0.0, lg), max(0.0, -lg)


def check_bounds(text: str, constants: dict[str, float], path: str) -> None:
    """Raise :class:`SpecError` at ``path`` when ``text`` (already token-checked) has a power in
    an exponent, an exponent above :data:`MAX_EXPONENT` or a number above
    :data:`MAX_NUMBER_DIGITS` digits (see the module docstring)."""
    text = text.strip().replace("^", "**")  # sympy's convert_xor; '^' passed the token check
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as e:
        msg = getattr(e, "msg", str(e))
        raise SpecError(f"syntax error in the expression {_quote(text)}: {cut(msg, 80)}",
                        path=path) from None
    except (RecursionError, MemoryError):
        raise SpecError(f"the expression {_quote(text)} is nested too deeply", path=path) \
            from None
    bounds: dict[int, tuple[float, float]] = {}
    in_exponent: dict[int, bool] = {id(tree.body): False}
    stack: list[tuple[ast.AST, bool]] = [(tree.body, False)]
    while stack:
        node, done = stack.pop()
        if not done:
            stack.append((node, True))
            inside = in_exponent[id(node)]
            if isinstance(node, ast.BinOp) and isinstance(node.op, _POW_OPS):
                if inside:
                    raise SpecError(f"a power inside an exponent ({_quote(text, node)}) is not "
                                    "allowed; write exp(...) of a product instead", path=path)
                kids = [(node.left, False), (node.right, True)]
            else:
                kids = [(k, inside) for k in ast.iter_child_nodes(node)]
            for k, inner in kids:
                in_exponent[id(k)] = inner
                stack.append((k, False))
            continue
        bounds[id(node)] = _bound(node, bounds, constants, text, path)


def _bound(node: ast.AST, bounds: dict[int, tuple[float, float]], constants: dict[str, float],
           text: str, path: str) -> tuple[float, float]:
    """(M, D) of ``node`` from its children's (already in ``bounds``)."""
    def of(k: ast.AST) -> tuple[float, float]:
        return bounds.get(id(k), (0.0, 0.0))

    if isinstance(node, ast.Constant):
        seg = ast.get_source_segment(text, node) or repr(node.value)
        return _digits(seg) if isinstance(node.value, (int, float)) else (0.0, 0.0)
    if isinstance(node, ast.Name):
        if node.id in constants:
            return _digits(constants[node.id])
        return (0.5, 0.0) if node.id == "pi" else (0.0, 0.0)
    if isinstance(node, ast.UnaryOp):
        return of(node.operand)
    if isinstance(node, ast.BinOp):
        (ma, da), (mb, db) = of(node.left), of(node.right)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            m, d = max(ma + db, mb + da) + _LOG2, da + db
        elif isinstance(node.op, ast.Mult):
            m, d = ma + mb, da + db
        elif isinstance(node.op, ast.Div):
            m, d = ma + db, da + mb
        elif isinstance(node.op, _POW_OPS):
            size = _exponent(mb, node, text, path)
            m = d = size * max(ma, da)
        else:  # other operators do not pass the token check
            m, d = max(ma, mb) + 1, max(da, db) + 1
        return _checked(m, d, node, text, path)
    if isinstance(node, ast.Call):
        args = [of(a) for a in node.args]
        m = max((a[0] for a in args), default=0.0)
        d = max((a[1] for a in args), default=0.0)
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name in _EXP_LIKE:  # e**a has |a| / ln 10 digits (and exp(n·log b) is b**n)
            m = d = 10.0 ** min(m, 300.0) / _LN10
        elif name == "log":
            m, d = math.log10(2.31 * max(m, d, 1.0)), 0.0
        else:  # exact values of sin, sqrt, Max, … at special points are small
            m, d = m + 1.0, d + 1.0
        return _checked(m, d, node, text, path)
    kids = [of(k) for k in ast.iter_child_nodes(node)]
    return (max((k[0] for k in kids), default=0.0), max((k[1] for k in kids), default=0.0))


def _exponent(m: float, node: ast.AST, text: str, path: str) -> float:
    """10**m, the bound of an exponent, if it is within :data:`MAX_EXPONENT`."""
    size = 10.0 ** min(m, 300.0)
    if size > MAX_EXPONENT * (1 + 1e-9):
        raise SpecError(f"the exponent in {_quote(text, node)} may reach about {_about(size)}; "
                        f"exponents are limited to {MAX_EXPONENT:,} in size", path=path)
    return size


def _checked(m: float, d: float, node: ast.AST, text: str, path: str) -> tuple[float, float]:
    if max(m, d) > MAX_NUMBER_DIGITS:
        raise SpecError(f"{_quote(text, node)} may compute a number of about "
                        f"{_about(max(m, d))} digits; numbers in expressions are limited to "
                        f"{MAX_NUMBER_DIGITS:,} digits", path=path)
    return m, d


def _about(x: float) -> str:
    return f"{x:,.0f}" if x < 1e6 else f"{x:.2g}"


def _quote(text: str, node: ast.AST | None = None) -> str:
    seg = (ast.get_source_segment(text, node) if node is not None else None) or text
    return repr(cut(seg, 50))


def derivative_size(expr) -> int:
    """An estimate of the size (nodes) of the first derivative of a sympy expression, without
    differentiating: the product rule makes a product of k factors k terms of k − 1 factors, the
    chain rule repeats a function's argument. Used to refuse equations whose derivatives (the
    costate equations) would take sympy seconds to form."""
    size: dict[int, int] = {}
    dsize: dict[int, int] = {}
    stack = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if not done:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if id(a) not in size)
            continue
        args = node.args
        s = 1 + sum(size[id(a)] for a in args)
        if not args:
            d = 1
        elif node.is_Mul:
            d = sum(dsize[id(a)] for a in args) + (len(args) - 1) * s
        elif node.is_Add:
            d = 1 + sum(dsize[id(a)] for a in args)
        else:  # a power or a function: the chain rule repeats the node
            d = sum(dsize[id(a)] for a in args) + 2 * s
        size[id(node)], dsize[id(node)] = s, d
    return dsize[id(expr)]
