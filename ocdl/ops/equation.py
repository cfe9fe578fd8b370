"""equation: a stage of a network given by expressions (the issue's equation-defined stages
inside a network spec).

    - name: dyn
      op: equation
      variables: [x1, x2]                     # the input vector's entries (input shape [2])
      controls: {a: real, b: {set: box, lo: -1, hi: 1}}   # scalar controls θ_t of the stage
      constants: {dt: 0.1}                    # optional named numbers
      dynamics: {x1: x1 + dt*x2, x2: x2 + dt*(a*tanh(x1) + b)}
      outputs: [x1, x2]                       # optional: the output entries' names and order
                                              # (default: the variables)

f(x, θ) maps the (S, n) batch to (S, m), one expression per output; the expressions are parsed
by the safe parser of :mod:`ocdl.symbolic.expressions` and lambdified to batched torch functions. Each
control is a scalar (shape (1,)) shared by the samples.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeError, SpecError, did_you_mean
from .base import ControlDecl, Op, Param, register


def _key(p: dict[str, Any]) -> tuple:
    return (tuple(p["variables"]), tuple(_outputs(p)), tuple(p["dynamics"].items()),
            tuple((p["constants"] or {}).items()), tuple(p["controls"] or {}))


def _outputs(p: dict[str, Any]) -> tuple[str, ...]:
    return tuple(p["outputs"]) if p.get("outputs") else tuple(p["variables"])


class _Compiled:
    """sympy expressions of one stage (constants substituted) and their lambdified forms."""

    def __init__(self, p: dict[str, Any], path: str = ""):
        import sympy as sp

        from ..symbolic.expressions import parse_expression
        self.variables = list(p["variables"])
        self.controls = list(p["controls"] or {})
        self.outputs = list(_outputs(p))
        consts = p["constants"] or {}
        syms = {n: sp.Symbol(n, real=True) for n in self.variables + self.controls + list(consts)}
        self.x = [syms[n] for n in self.variables]
        self.u = [syms[n] for n in self.controls]
        values = {syms[n]: (sp.Integer(int(v)) if float(v).is_integer() else sp.Float(v))
                  for n, v in consts.items()}
        self.exprs = [sp.sympify(parse_expression(p["dynamics"][o], syms,
                                                  f"{path}.dynamics.{o}", consts)).subs(values)
                      for o in self.outputs]
        self._fns: dict[str, Any] = {}

    def function(self, backend: str = "torch"):
        """f(x_1..x_n, u_1..u_k) → list of output values (``torch`` or ``casadi``)."""
        if backend not in self._fns:
            import sympy as sp

            from ..symbolic.backends import casadi_modules, torch_modules
            mods = [torch_modules() if backend == "torch" else casadi_modules(), "math"]
            self._fns[backend] = sp.lambdify(self.x + self.u, self.exprs, modules=mods, cse=True)
        return self._fns[backend]


@register
class Equation(Op):
    name = "equation"
    doc = ("a vector map given by expressions: one expression per output entry, of the input "
           "entries (variables), the stage's scalar controls and constants")
    params = {
        "variables": Param("names", doc="names of the input vector's entries, in order"),
        "dynamics": Param("mapping", doc="one expression per output entry, e.g. "
                          "{x1: x1 + dt*x2}", item="expr"),
        "controls": Param("mapping", None, "scalar controls of the stage and their admissible "
                          "sets, e.g. {a: real, b: {set: box, lo: -1, hi: 1}}", item="control"),
        "constants": Param("mapping", None, "named numbers, e.g. {dt: 0.1}", item="number"),
        "outputs": Param("names", None, "names of the output entries, in order (default: the "
                         "variables)"),
    }

    def __init__(self):
        self._cache: dict[tuple, _Compiled] = {}

    def compiled(self, p: dict[str, Any], path: str = "") -> _Compiled:
        key = _key(p)
        if key not in self._cache:
            self._cache[key] = _Compiled(p, path)
        return self._cache[key]

    def check_params(self, p, path):
        from ..symbolic.expressions import RESERVED
        taken: dict[str, str] = {}
        for field in ("variables", "controls", "constants"):
            names = list(p[field] or ())
            for i, n in enumerate(names):
                fp = f"{path}.{field}[{i}]" if field == "variables" else f"{path}.{field}.{n}"
                if n in RESERVED or n.startswith("p_"):
                    raise SpecError(f"'{n}' is reserved (t, S, p_* and function names); choose "
                                    "another name", path=fp)
                if n in taken:
                    raise SpecError(f"the name '{n}' is both {taken[n]} and {field[:-1]}; "
                                    "variables, controls and constants need distinct names",
                                    path=fp)
                taken[n] = "a " + field[:-1]
        outputs = list(_outputs(p))
        dyn = p["dynamics"]
        for k in dyn:
            if k not in outputs:
                what = "outputs" if p.get("outputs") else "variables"
                raise SpecError(f"'{k}' is not one of the {what}{did_you_mean(k, outputs)}; "
                                f"dynamics give one expression for each of: {', '.join(outputs)}"
                                + ("" if p.get("outputs") else " (name new entries in "
                                   "'outputs')"), path=f"{path}.dynamics.{k}")
        for o in outputs:
            if o not in dyn:
                raise SpecError(f"missing the expression of output '{o}' in 'dynamics'",
                                path=f"{path}.dynamics")
        self.compiled(p, path)  # parses every expression: unknown symbols, unsafe input
        return p

    def out_shape(self, p, in_shapes, where):
        s = tuple(in_shapes[0])
        n = len(p["variables"])
        if s != (n,):
            raise ShapeError(f"equation stage has {n} variables [{', '.join(p['variables'])}] "
                             f"but its input has shape {list(s)}; the input must be a vector of "
                             f"shape [{n}]", path=where)
        return (len(_outputs(p)),)

    def controls(self, p, in_shapes):
        return [ControlDecl(n, (1,), cs, primary=True, weight=False)
                for n, cs in (p["controls"] or {}).items()]

    def flops(self, p, in_shapes, out):
        import sympy as sp
        return int(sum(sp.count_ops(e) for e in self.compiled(p).exprs))

    def forward(self, p, xs, theta, buffers, *, train, update_stats, ctx):
        from ..symbolic.backends import column
        c = self.compiled(p)
        x = xs[0]
        us = [theta[n].reshape(()) for n in c.controls]
        out = c.function("torch")(*x.unbind(1), *us)
        return torch.stack([column(v, x[:, 0]) for v in out], dim=1)
