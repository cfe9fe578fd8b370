"""Equation-defined control systems in the spec: the ``system:`` block, validated into an
:class:`EquationSpec`.

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
shared by the samples. The expressions are checked and parsed by
:mod:`ocdl.symbolic.expressions` (a token check before sympy, and the limits of
:mod:`ocdl.limits`); equations whose costate equations would be too large to form are refused
before sympy forms them. Every error is a :class:`SpecError` naming the field, file and line.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .. import limits
from ..controls import ControlSet, Real, compact_set, control_from_dict
from ..errors import SpecError, did_you_mean, short
from ..symbolic.expr_bounds import derivative_size
from ..symbolic.expressions import RESERVED, parse_expression

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

SYSTEM_KEYS = ("constants", "states", "controls", "horizon", "dynamics", "cost")
COST_KEYS = ("running", "terminal")
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
                        f"{short(k)}", path=path)
    if k in RESERVED or k.startswith("p_"):
        raise SpecError(f"{short(k)} is reserved (t is the stage index, S the number of samples, "
                        "p_* the costates, and function names); choose another name", path=path)
    if k in taken:
        raise SpecError(f"the name {short(k)} is used twice; states, controls and constants need "
                        "distinct names", path=path)
    taken.add(k)
    if len(taken) > limits.MAX_NAMES:
        raise SpecError(f"more than {limits.MAX_NAMES} names (states, controls and constants "
                        "together); a system has at most that many", path=path)
    return k


def _finite(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(f"expected a finite number, got {short(v)}", path=path)
    return float(v)


def _check_derivatives(f_and_L: list[Any], phi: Any, n: int, k: int, path: str) -> None:
    """Refuse equations whose costate equations (∂H/∂x, ∂H/∂u, ∇Φ) sympy would take long to
    form: their estimated size (:func:`derivative_size`) over :data:`limits.MAX_DERIVATIVE_SIZE`."""
    work = sum(derivative_size(e) for e in f_and_L) * (n + k) + derivative_size(phi) * n
    if work > limits.MAX_DERIVATIVE_SIZE:
        raise SpecError(f"the costate equations (the derivatives of the dynamics and costs by "
                        f"{n} state(s) and {k} control(s)) would have about {work:,} terms; at "
                        f"most {limits.MAX_DERIVATIVE_SIZE:,} are allowed: shorten the "
                        "expressions, above all long products", path=path)


def equation_spec_from_dict(d: Any, path: str = "system") -> EquationSpec:
    """Validate a ``system:`` mapping (expressions included) into an :class:`EquationSpec`."""
    import sympy as sp
    if not isinstance(d, dict):
        raise SpecError("expected a mapping with states, controls, horizon, dynamics and cost",
                        path=path)
    for k in d:
        if k not in SYSTEM_KEYS:
            raise SpecError(f"unknown key {short(str(k))} in the system block"
                            f"{did_you_mean(str(k), SYSTEM_KEYS)}; allowed: "
                            f"{', '.join(SYSTEM_KEYS)}", path=f"{path}.{k}")
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
            raise SpecError(f"state {short(k)} has {len(c)} initial values, others have {S}; "
                            f"give one value or {S}", path=f"{path}.states.{k}")
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
        raise SpecError(f"expected the horizon T as a positive integer, got {short(T)}",
                        path=f"{path}.horizon")
    if T > limits.MAX_HORIZON:
        raise SpecError(f"the horizon {T:,} is too long: at most {limits.MAX_HORIZON:,} stages",
                        path=f"{path}.horizon")
    if T * len(controls) > limits.MAX_EQ_CONTROLS:
        raise SpecError(f"{T:,} stages × {len(controls)} controls = {T * len(controls):,} "
                        f"control values; a system has at most {limits.MAX_EQ_CONTROLS:,}: "
                        "shorten the horizon or use fewer controls", path=f"{path}.horizon")
    symbols = {k: sp.Symbol(k, real=True) for k in names + [c for c, _ in controls]}
    symbols.update({k: sp.Symbol(k, real=True) for k, _ in constants})
    symbols["t"] = sp.Symbol("t", integer=True, nonnegative=True)
    values = dict(constants)
    dyn_d = d.get("dynamics")
    if not isinstance(dyn_d, dict):
        raise SpecError("expected one expression per state, e.g. {x: x + dt*u}",
                        path=f"{path}.dynamics")
    for k in dyn_d:
        if k not in names:
            raise SpecError(f"{short(str(k))} is not a state{did_you_mean(str(k), names)}; "
                            f"dynamics give x_(t+1) for each of: {', '.join(names)}",
                            path=f"{path}.dynamics.{k}")
    dynamics: list[str] = []
    parsed: list[Any] = []
    for k in names:
        if k not in dyn_d:
            raise SpecError(f"missing the dynamics of state '{k}' (its value at t+1)",
                            path=f"{path}.dynamics")
        parsed.append(parse_expression(dyn_d[k], symbols, f"{path}.dynamics.{k}", values))
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
            raise SpecError(f"unknown key {short(str(k))} in the cost"
                            f"{did_you_mean(str(k), COST_KEYS)}; "
                            "allowed: running, terminal", path=f"{path}.cost.{k}")
    running = cost.get("running", 0)
    terminal = cost.get("terminal", 0)
    parsed.append(parse_expression(running, symbols, f"{path}.cost.running", values))
    term_syms = {k: v for k, v in symbols.items() if k not in {c for c, _ in controls}}
    term_syms.pop("t")
    phi = parse_expression(terminal, term_syms, f"{path}.cost.terminal", values)
    _check_derivatives(parsed, phi, len(names), len(controls), path)
    return EquationSpec(states=tuple(names), initial=initial, controls=tuple(controls),
                        horizon=T, dynamics=tuple(dynamics), running=str(running),
                        terminal=str(terminal), constants=constants)
