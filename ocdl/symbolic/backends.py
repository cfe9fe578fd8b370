"""The numeric backends of sympy expressions: the module mappings ``sympy.lambdify`` compiles
them with (torch for training, casadi for ``ocdl check``), and the broadcast of a lambdified
value to a per-sample column."""
from __future__ import annotations

from functools import reduce
from typing import Any

import torch


def torch_modules() -> dict[str, Any]:
    def _max(*a):
        return reduce(lambda x, y: torch.maximum(torch.as_tensor(x), torch.as_tensor(y)), a)

    def _min(*a):
        return reduce(lambda x, y: torch.minimum(torch.as_tensor(x), torch.as_tensor(y)), a)

    def _heaviside(x, h0=0.5):
        x = torch.as_tensor(x)
        return torch.where(x > 0, 1.0, torch.where(x < 0, 0.0, float(h0))).to(x.dtype)

    def _f(fn):
        return lambda x: fn(torch.as_tensor(x))

    return {"sin": _f(torch.sin), "cos": _f(torch.cos), "tan": _f(torch.tan),
            "tanh": _f(torch.tanh), "exp": _f(torch.exp), "log": _f(torch.log),
            "sqrt": _f(torch.sqrt), "Abs": _f(torch.abs), "sign": _f(torch.sign),
            "Max": _max, "Min": _min, "Heaviside": _heaviside, "pi": 3.141592653589793,
            "E": 2.718281828459045}


def casadi_modules() -> dict[str, Any]:
    import casadi as ca
    return {"sin": ca.sin, "cos": ca.cos, "tan": ca.tan, "tanh": ca.tanh, "exp": ca.exp,
            "log": ca.log, "sqrt": ca.sqrt, "Abs": ca.fabs, "sign": ca.sign,
            "Max": lambda *a: reduce(ca.fmax, a), "Min": lambda *a: reduce(ca.fmin, a),
            "Heaviside": lambda x, h0=0.5: ca.if_else(x > 0, 1, ca.if_else(x < 0, 0, h0)),
            "pi": 3.141592653589793, "E": 2.718281828459045}


def column(v: Any, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a lambdified value (tensor or Python number) to a (S,) column like ``like``."""
    if not isinstance(v, torch.Tensor):
        v = torch.tensor(float(v), dtype=like.dtype, device=like.device)
    return v.to(like.dtype).expand(like.shape[0]) if v.dim() == 0 or v.shape[0] == 1 else v
