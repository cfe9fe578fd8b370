"""Equation-defined control systems in the spec (the ``system:`` block) and a safe expression
parser.

A classical discrete-time optimal control problem written as equations::

    system:
      constants: {a: 1.0, b: 0.5}          # optional named numbers
      states: {x1: 1.0, x2: 0.0}           # initial values x_0; a list per state = several
                                           # initial states (the samples s = 1..S)
      controls: {u: real}                  # admissible sets (real, box, binary, ternary, levels)
      horizon: 20                          # T
      dynamics: {x1: x1 + dt*x2, x2: x2 + dt*u}     # x_{t+1} = f(x_t, u_t), one per state
      cost: {running: x1**2 + 0.1*u**2, terminal: 10*x2**2}   # L_t(x_t, u_t) and Φ(x_T)

The controls are per stage: θ_t = u_t, one value of every named control at each t = 0..T−1,
shared by the samples. Expressions may use the states, controls, constants, ``t`` (the stage
index) and the functions in :data:`FUNCTIONS`. They are parsed by
``sympy.parsing.sympy_parser.parse_expr`` only after a token check: numbers, known names,
arithmetic operators, parentheses and commas are allowed; anything else (attribute access, dunder
names, strings, keywords such as ``lambda`` or ``import``, subscripts) and every unknown name is a
:class:`SpecError` naming the field, file and line.
"""
from __future__ import annotations

import io
import keyword
import math
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from ..controls import ControlSet, Real, control_from_dict
from ..errors import SpecError, did_you_mean

SYSTEM_KEYS = ("constants", "states", "controls", "horizon", "dynamics", "cost")
COST_KEYS = ("running", "terminal")
FUNCTIONS = ("sin", "cos", "tan", "tanh", "exp", "log", "sqrt", "Abs", "abs", "Max", "max",
             "Min", "min", "relu", "sigmoid", "sign", "pi")
RESERVED = ("t", "S") + FUNCTIONS
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
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


def check_tokens(text: str, allowed: set[str], path: str) -> None:
    """Reject anything but numbers, names in ``allowed`` (plus :data:`FUNCTIONS`) and arithmetic;
    raise :class:`SpecError` at ``path`` naming the offending token."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as e:
        raise SpecError(f"cannot read the expression {text!r}: {e}", path=path) from None
    for tok in toks:
        kind, s = tok.type, tok.string
        if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                    tokenize.DEDENT):
            continue
        if kind == tokenize.NUMBER:
            if s.lower().endswith(("j", "l")) or s.lower().startswith(("0x", "0o", "0b")):
                raise SpecError(f"unsupported number {s!r} in {text!r}", path=path)
            continue
        if kind == tokenize.NAME:
            if s.startswith("_") or "__" in s:
                raise SpecError(f"names starting with '_' (such as {s!r}) are not allowed in "
                                f"expressions: {text!r}", path=path)
            if keyword.iskeyword(s):
                raise SpecError(f"the Python keyword {s!r} is not allowed in an expression: "
                                f"{text!r}; write arithmetic of the states, controls and "
                                "constants", path=path)
            if s not in allowed and s not in FUNCTIONS:
                known = sorted(allowed | set(FUNCTIONS))
                raise SpecError(f"unknown symbol '{s}'{did_you_mean(s, known)} in {text!r}; "
                                f"known symbols: {', '.join(sorted(allowed))}", path=path)
            continue
        if kind == tokenize.OP and s in _OPS:
            continue
        if kind == tokenize.OP and s == ".":
            raise SpecError(f"attribute access ('.') is not allowed in an expression: {text!r}",
                            path=path)
        raise SpecError(f"'{s}' is not allowed in an expression ({text!r}); use numbers, names, "
                        "+ - * / ** and function calls such as sin(x)", path=path)


def parse_expression(text: Any, symbols: dict[str, Any], path: str):
    """Parse ``text`` (or a number) into a sympy expression over ``symbols`` (name → sympy
    object), safely (see the module docstring). Raises :class:`SpecError` at ``path``."""
    import sympy as sp
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise SpecError(f"expected an expression (text or a number), got {text!r}", path=path)
    if not isinstance(text, str):
        if not math.isfinite(text):
            raise SpecError(f"expected a finite number, got {text!r}", path=path)
        return sp.Float(text) if isinstance(text, float) else sp.Integer(text)
    if not text.strip():
        raise SpecError("empty expression", path=path)
    check_tokens(text, set(symbols), path)
    local = {**_sympy_namespace(), **symbols}
    glob: dict[str, Any] = {}
    exec("from sympy import Integer, Float, Rational, Symbol", glob)  # names parse_expr emits
    try:
        expr = parse_expr(text, local_dict=local, global_dict=glob,
                          transformations=standard_transformations + (convert_xor,),
                          evaluate=True)
    except SyntaxError as e:
        raise SpecError(f"syntax error in the expression {text!r}: {e.msg}", path=path) from None
    except (TypeError, ValueError, AttributeError, NameError) as e:
        raise SpecError(f"bad expression {text!r}: {e}", path=path) from None
    if not isinstance(expr, sp.Expr):
        raise SpecError(f"the expression {text!r} is not a number-valued formula", path=path)
    unknown = {str(s) for s in expr.free_symbols} - set(symbols)
    if unknown:
        raise SpecError(f"unknown symbol '{sorted(unknown)[0]}' in {text!r}", path=path)
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan):
        raise SpecError(f"the expression {text!r} is not real-valued", path=path)
    return expr


@dataclass(frozen=True)
class EquationSpec:
    """The ``system:`` block: named ``states`` with their initial values ``initial`` (S rows,
    one per sample, n columns), named ``controls`` with admissible sets, the horizon T, one
    dynamics expression per state (text), running cost L_t(x, u) and terminal cost Φ(x) (text,
    ``"0"`` when absent) and named ``constants``."""

    states: tuple[str, ...]
    initial: tuple[tuple[float, ...], ...]
    controls: tuple[tuple[str, ControlSet], ...]
    horizon: int
    dynamics: tuple[str, ...]
    running: str = "0"
    terminal: str = "0"
    constants: tuple[tuple[str, float], ...] = ()

    @property
    def n(self) -> int:
        return len(self.states)

    @property
    def S(self) -> int:
        return len(self.initial)

    @property
    def control_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.controls)

    def to_dict(self) -> dict[str, Any]:
        from ..ops.base import compact_set
        d: dict[str, Any] = {}
        if self.constants:
            d["constants"] = {k: v for k, v in self.constants}
        if self.S == 1:
            d["states"] = {s: self.initial[0][i] for i, s in enumerate(self.states)}
        else:
            d["states"] = {s: [row[i] for row in self.initial] for i, s in enumerate(self.states)}
        d["controls"] = {k: compact_set(v) for k, v in self.controls}
        d["horizon"] = self.horizon
        d["dynamics"] = {s: e for s, e in zip(self.states, self.dynamics)}
        d["cost"] = {"running": self.running, "terminal": self.terminal}
        return d


def _name(k: Any, path: str, taken: set[str]) -> str:
    if not isinstance(k, str) or not _IDENT.match(k):
        raise SpecError(f"expected a name of letters, digits and '_' starting with a letter, got "
                        f"{k!r}", path=path)
    if k in RESERVED or k.startswith("p_"):
        raise SpecError(f"'{k}' is reserved (t is the stage index, S the number of samples, "
                        "p_* the costates, and function names); choose another name", path=path)
    if k in taken:
        raise SpecError(f"the name '{k}' is used twice; states, controls and constants need "
                        "distinct names", path=path)
    taken.add(k)
    return k


def _finite(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(f"expected a finite number, got {v!r}", path=path)
    return float(v)


def equation_spec_from_dict(d: Any, path: str = "system") -> EquationSpec:
    """Validate a ``system:`` mapping (expressions included) into an :class:`EquationSpec`."""
    import sympy as sp
    if not isinstance(d, dict):
        raise SpecError("expected a mapping with states, controls, horizon, dynamics and cost",
                        path=path)
    for k in d:
        if k not in SYSTEM_KEYS:
            raise SpecError(f"unknown key '{k}' in the system block{did_you_mean(str(k), SYSTEM_KEYS)}"
                            f"; allowed: {', '.join(SYSTEM_KEYS)}", path=f"{path}.{k}")
    taken: set[str] = set()
    consts = d.get("constants") or {}
    if not isinstance(consts, dict):
        raise SpecError("expected a mapping of names to numbers, e.g. {dt: 0.1}",
                        path=f"{path}.constants")
    constants = tuple((_name(k, f"{path}.constants.{k}", taken),
                       _finite(v, f"{path}.constants.{k}")) for k, v in consts.items())
    states_d = d.get("states")
    if not isinstance(states_d, dict) or not states_d:
        raise SpecError("expected a mapping of state names to initial values, e.g. {x: 1.0} "
                        "(a list of values gives several initial states)", path=f"{path}.states")
    names: list[str] = []
    columns: list[list[float]] = []
    for k, v in states_d.items():
        sp_ = f"{path}.states.{k}"
        names.append(_name(k, sp_, taken))
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise SpecError("expected at least one initial value", path=sp_)
        columns.append([_finite(x, f"{sp_}[{i}]" if isinstance(v, list) else sp_)
                        for i, x in enumerate(vals)])
    S = max(len(c) for c in columns)
    for k, c in zip(names, columns):
        if len(c) not in (1, S):
            raise SpecError(f"state '{k}' has {len(c)} initial values, others have {S}; give one "
                            f"value or {S}", path=f"{path}.states.{k}")
    initial = tuple(tuple(c[s] if len(c) > 1 else c[0] for c in columns) for s in range(S))
    ctrl_d = d.get("controls")
    if not isinstance(ctrl_d, dict) or not ctrl_d:
        raise SpecError("expected a mapping of control names to admissible sets, e.g. "
                        "{u: real} or {u: {set: box, lo: -1, hi: 1}}", path=f"{path}.controls")
    controls = []
    for k, v in ctrl_d.items():
        cp = f"{path}.controls.{k}"
        _name(k, cp, taken)
        if v == "real" or v is None:
            cs: ControlSet = Real(init_rule="zeros")  # an OCP starts from u = 0
        else:
            cs = control_from_dict(v, cp)
        controls.append((k, cs))
    T = d.get("horizon")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise SpecError(f"expected the horizon T as a positive integer, got {T!r}",
                        path=f"{path}.horizon")
    symbols = {k: sp.Symbol(k, real=True) for k in names + [c for c, _ in controls]}
    symbols.update({k: sp.Symbol(k, real=True) for k, _ in constants})
    symbols["t"] = sp.Symbol("t", integer=True, nonnegative=True)
    dyn_d = d.get("dynamics")
    if not isinstance(dyn_d, dict):
        raise SpecError("expected one expression per state, e.g. {x: x + dt*u}",
                        path=f"{path}.dynamics")
    for k in dyn_d:
        if k not in names:
            raise SpecError(f"'{k}' is not a state{did_you_mean(str(k), names)}; dynamics give "
                            f"x_(t+1) for each of: {', '.join(names)}", path=f"{path}.dynamics.{k}")
    dynamics = []
    for k in names:
        if k not in dyn_d:
            raise SpecError(f"missing the dynamics of state '{k}' (its value at t+1)",
                            path=f"{path}.dynamics")
        parse_expression(dyn_d[k], symbols, f"{path}.dynamics.{k}")
        dynamics.append(str(dyn_d[k]))
    cost = d.get("cost")
    if cost is None:
        raise SpecError("missing 'cost': give running and/or terminal expressions",
                        path=f"{path}.cost")
    if not isinstance(cost, dict):
        raise SpecError("expected a mapping {running: <expression>, terminal: <expression>}",
                        path=f"{path}.cost")
    for k in cost:
        if k not in COST_KEYS:
            raise SpecError(f"unknown key '{k}' in the cost{did_you_mean(str(k), COST_KEYS)}; "
                            "allowed: running, terminal", path=f"{path}.cost.{k}")
    running = cost.get("running", 0)
    terminal = cost.get("terminal", 0)
    parse_expression(running, symbols, f"{path}.cost.running")
    term_syms = {k: v for k, v in symbols.items() if k not in {c for c, _ in controls}}
    term_syms.pop("t")
    parse_expression(terminal, term_syms, f"{path}.cost.terminal")
    return EquationSpec(states=tuple(names), initial=initial, controls=tuple(controls),
                        horizon=T, dynamics=tuple(dynamics), running=str(running),
                        terminal=str(terminal), constants=constants)
