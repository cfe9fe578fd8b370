"""The symbolic side of an equation-defined system: sympy expressions of f, L, Φ, the Hamiltonian
and its derivatives, turned into batched torch (or casadi) functions.

Per sample (DESIGN.md §1; S samples share the controls u_t):

    H_t(x, p, u) = p · f(x, u, t) − (1/S) L(x, u, t)
    p_T = −(1/S) ∇Φ(x_T),   p_t = ∇_x H_t(x_t, p_{t+1}, u_t),   Σ_s ∇_u H_t = 0 (stationarity)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sympy as sp

from .backends import casadi_modules, torch_modules
from .expressions import parse_expression

if TYPE_CHECKING:
    from ..modelspec.equations import EquationSpec


class SymbolicModel:
    """sympy form of an :class:`EquationSpec`: state symbols ``x``, control symbols ``u``,
    costate symbols ``p`` (``p_<state>``), the stage index ``t`` and the number of samples ``S``
    as symbols, constants substituted (kept symbolic for printing in ``*_sym``)."""

    def __init__(self, eq: EquationSpec):
        self.eq = eq
        self.x = [sp.Symbol(n, real=True) for n in eq.states]
        self.u = [sp.Symbol(n, real=True) for n in eq.control_names]
        self.p = [sp.Symbol(f"p_{n}", real=True) for n in eq.states]
        self.c = {n: sp.Symbol(n, real=True) for n, _ in eq.constants}
        self.t = sp.Symbol("t", integer=True, nonnegative=True)
        self.S = sp.Symbol("S", positive=True)
        syms = {s.name: s for s in self.x + self.u}
        syms.update(self.c)
        syms["t"] = self.t
        consts = dict(eq.constants)
        self.f_sym = [parse_expression(e, syms, f"system.dynamics.{n}", consts)
                      for n, e in zip(eq.states, eq.dynamics)]
        self.L_sym = parse_expression(eq.running, syms, "system.cost.running", consts)
        self.Phi_sym = parse_expression(eq.terminal, syms, "system.cost.terminal", consts)
        values = {self.c[n]: sp.Float(v) if not float(v).is_integer() else sp.Integer(int(v))
                  for n, v in eq.constants}
        self._values = values
        self.f = [sp.sympify(e).subs(values) for e in self.f_sym]
        self.L = sp.sympify(self.L_sym).subs(values)
        self.Phi = sp.sympify(self.Phi_sym).subs(values)
        # Hamiltonian and its derivatives (per sample)
        self.H_sym = sum(pi * fi for pi, fi in zip(self.p, self.f_sym)) - self.L_sym / self.S
        self.H = sum(pi * fi for pi, fi in zip(self.p, self.f)) - self.L / self.S
        self.dH_dx = [sp.diff(self.H, xi) for xi in self.x]
        self.dH_du = [sp.diff(self.H, ui) for ui in self.u]
        self.pT = [-sp.diff(self.Phi, xi) / self.S for xi in self.x]
        self._cache: dict[tuple[str, str], Callable] = {}

    # ------------------------------------------------------------------ numerics
    @property
    def args(self) -> list[sp.Symbol]:
        """Argument order of every compiled function: x..., u..., p..., t, S."""
        return self.x + self.u + self.p + [self.t, self.S]

    def function(self, what: str, backend: str = "torch") -> Callable:
        """A function of (x..., u..., p..., t, S) returning the list of expressions ``what``
        (``f``, ``L``, ``Phi``, ``H``, ``dH_dx``, ``dH_du``, ``pT``) for the ``torch`` or
        ``casadi`` backend (sympy.lambdify with a module mapping)."""
        key = (what, backend)
        if key not in self._cache:
            exprs = getattr(self, what)
            exprs = list(exprs) if isinstance(exprs, list) else [exprs]
            mods = [torch_modules() if backend == "torch" else casadi_modules(), "math"]
            self._cache[key] = sp.lambdify(self.args, exprs, modules=mods, cse=True)
        return self._cache[key]

    # ------------------------------------------------------------------ printing
    def _sub(self, e: sp.Expr, numeric: bool) -> sp.Expr:
        return sp.sympify(e).subs(self._values) if numeric else e

    def equations(self, numeric: bool = False) -> list[tuple[str, sp.Expr, sp.Expr]]:
        """(label, lhs, rhs) of the dynamics, Hamiltonian, costate equations and stationarity
        condition; ``numeric`` substitutes the constants' values."""
        out: list[tuple[str, sp.Expr, sp.Expr]] = []
        nxt = {xi: sp.Symbol(f"{xi.name}_(t+1)") for xi in self.x}
        for xi, fi in zip(self.x, self.f_sym):
            out.append(("dynamics", nxt[xi], self._sub(fi, numeric)))
        H = self.H_sym if not numeric else self.H
        out.append(("Hamiltonian", sp.Symbol("H_t"), H))
        for xi, pi in zip(self.x, self.pT):
            out.append(("terminal costate", sp.Symbol(f"p_{xi.name}(T)"),
                        pi if numeric else -sp.diff(self.Phi_sym, xi) / self.S))
        for xi in self.x:
            rhs = sp.diff(H, xi)
            out.append(("costate", sp.Symbol(f"p_{xi.name}(t)"), rhs))
        for ui in self.u:
            out.append(("stationarity", sp.Symbol(f"dH_t/d{ui.name}"), sp.diff(H, ui)))
        return out

    def explain_text(self, latex: bool = False, numeric: bool = False) -> str:
        """The equations as readable text (``sympy.sstr``) or LaTeX lines."""
        lines = []
        note = ("(per sample s; x, u at stage t, p = p_(t+1) on the right-hand side; S = "
                f"{self.eq.S} sample(s); stationarity: Σ_s ∂H_t/∂u = 0 for real controls, "
                "argmax over the set otherwise)")
        if not latex:
            lines.append(note)
        for label, lhs, rhs in self.equations(numeric):
            shown = rhs if label == "Hamiltonian" else _tidy(rhs)
            if latex:
                lines.append(f"% {label}\n{_latex_lhs(lhs)} = {sp.latex(shown)}")
            else:
                rhs_txt = sp.sstr(shown)
                if label == "stationarity":
                    lines.append(f"{label:>16}:  {lhs} = {rhs_txt} = 0")
                else:
                    lines.append(f"{label:>16}:  {lhs} = {rhs_txt}")
        return "\n".join(lines)


#: expressions with more operations are printed as derived; shorter ones with their common
#: factors pulled out (``sympy.factor_terms``: no expansion, no search, so its time is bounded,
#: unlike ``sympy.simplify``, which can take minutes on a ten-term expression)
TIDY_MAX_OPS = 200


def _tidy(e: sp.Expr) -> sp.Expr:
    """``e`` with common factors pulled out, if it is short (:data:`TIDY_MAX_OPS`)."""
    return sp.factor_terms(e) if sp.count_ops(e) <= TIDY_MAX_OPS else e


def _latex_lhs(lhs: sp.Symbol) -> str:
    name = lhs.name
    if name.endswith("_(t+1)"):
        return f"{{{sp.latex(sp.Symbol(name[:-6]))}}}_{{t+1}}"
    if name == "H_t":
        return "H_t"
    if name.startswith("p_") and name.endswith("(T)"):
        return f"p_{{{name[2:-3]},T}}"
    if name.startswith("p_") and name.endswith("(t)"):
        return f"p_{{{name[2:-3]},t}}"
    if name.startswith("dH_t/d"):
        return f"\\frac{{\\partial H_t}}{{\\partial {name[6:]}}}"
    return sp.latex(lhs)
