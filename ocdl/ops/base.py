"""The op interface and registry.

An op is one kind of stage map f_t(x_t, θ_t). It declares its parameters (validated from the
spec, also exported as JSON Schema), the controls θ_t it owns with their shapes and default
admissible sets, how it maps input shapes to an output shape, its FLOPs per sample, and its
batched torch forward. Ops are stateless; per-stage values (spec parameters, shapes, buffers)
live in :class:`ocdl.system.Stage`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..controls import ControlSet, Real, compact_set
from ..errors import ShapeError, SpecError, did_you_mean, short
from ..limits import MAX_EXPR_CHARS, MAX_NAMES, MAX_SIZE

REQUIRED = object()
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Param:
    """A spec parameter of an op: its kind, default and one-line doc.

    kinds: ``posint``, ``nonnegint``, ``number``, ``posnumber``, ``prob`` (0 ≤ v < 1), ``bool``,
    ``pair`` (a positive integer or a list of two), ``nonnegpair``, ``choice`` (one of ``choices``),
    ``int``, ``names`` (a list of distinct identifiers, kept as a tuple) and ``mapping`` (names
    to values of kind ``item``: ``expr`` (an expression: text or a number, kept as text),
    ``number`` (a finite number) or ``control`` (an admissible set)).
    """

    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] = ()
    item: str = ""  # value kind of a ``mapping``

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def validate(self, v: Any, path: str) -> Any:
        k = self.kind
        isint = isinstance(v, int) and not isinstance(v, bool)
        isnum = isinstance(v, (int, float)) and not isinstance(v, bool)
        if k == "posint" and not (isint and v > 0):
            raise SpecError(f"expected a positive integer, got {short(v)}", path=path)
        if k == "nonnegint" and not (isint and v >= 0):
            raise SpecError(f"expected a non-negative integer, got {short(v)}", path=path)
        if k == "int" and not isint:
            raise SpecError(f"expected an integer, got {short(v)}", path=path)
        if k in ("posint", "nonnegint", "int") and abs(v) > MAX_SIZE:
            raise SpecError(f"{v:,} is too large: sizes in a spec are at most {MAX_SIZE:,}",
                            path=path)
        if k == "number" and not (isnum and math.isfinite(v)):
            raise SpecError(f"expected a number, got {short(v)}", path=path)
        if k == "posnumber" and not (isnum and math.isfinite(v) and v > 0):
            raise SpecError(f"expected a positive number, got {short(v)}", path=path)
        if k == "prob" and not (isnum and 0 <= v < 1):
            raise SpecError(f"expected a probability in [0, 1), got {short(v)}", path=path)
        if k == "bool" and not isinstance(v, bool):
            raise SpecError(f"expected true or false, got {short(v)}", path=path)
        if k in ("pair", "nonnegpair"):
            lo = 1 if k == "pair" else 0
            ok = (isint and v >= lo) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(
                isinstance(e, int) and not isinstance(e, bool) and e >= lo for e in v))
            if not ok:
                what = "positive" if k == "pair" else "non-negative"
                raise SpecError(f"expected a {what} integer or a list of two, got {short(v)}",
                                path=path)
            pair = (v, v) if isint else tuple(v)
            if max(pair) > MAX_SIZE:
                raise SpecError(f"{max(pair):,} is too large: sizes in a spec are at most "
                                f"{MAX_SIZE:,}", path=path)
            return pair
        if k == "choice" and v not in self.choices:
            raise SpecError(f"expected one of {', '.join(map(str, self.choices))}, got {short(v)}"
                            f"{did_you_mean(str(v), map(str, self.choices))}", path=path)
        if k in ("names", "mapping") and v is None and self.default is None:
            return None  # an empty optional field (``controls:`` in YAML)
        if k == "names":
            return _names(v, path)
        if k == "mapping":
            return self._mapping(v, path)
        if k in ("number", "posnumber", "prob"):
            return float(v)
        return v

    def _mapping(self, v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            what = {"expr": "expressions, e.g. {x: x + dt*u}", "number": "numbers, e.g. {dt: 0.1}",
                    "control": "admissible sets, e.g. {u: real, w: {set: box, lo: -1, hi: 1}}"
                    }[self.item]
            raise SpecError(f"expected a mapping of names to {what}, got {short(v)}", path=path)
        if len(v) > MAX_NAMES:
            raise SpecError(f"{len(v):,} names; a stage has at most {MAX_NAMES}", path=path)
        out: dict[str, Any] = {}
        for key, val in v.items():
            kp = f"{path}.{key}"
            _ident(key, kp)
            if self.item == "expr":
                if isinstance(val, bool) or not isinstance(val, (str, int, float)) or (
                        isinstance(val, float) and not math.isfinite(val)):
                    raise SpecError(f"expected an expression (text or a finite number), got "
                                    f"{short(val)}", path=kp)
                out[key] = str(val)
            elif self.item == "number":
                if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(
                        val):
                    raise SpecError(f"expected a finite number, got {short(val)}", path=kp)
                out[key] = float(val)
            else:
                from ..controls import control_from_dict
                # a bare ``real`` (or nothing) starts from 0, like an equation-defined problem
                out[key] = (Real(init_rule="zeros") if val is None or val == "real"
                            else control_from_dict(val, kp))
        return out

    def to_data(self, v: Any) -> Any:
        """The plain-data (YAML) form of a validated value."""
        if isinstance(v, tuple):
            return list(v)
        if self.kind == "mapping" and isinstance(v, dict):
            if self.item == "control":  # "real" reads back as Real(zeros), see _mapping
                return {k: "real" if c == Real(init_rule="zeros") else compact_set(c)
                        for k, c in v.items()}
            return dict(v)
        return v

    def json_schema(self) -> dict[str, Any]:
        k = self.kind
        s: dict[str, Any]
        if k == "posint":
            s = {"type": "integer", "minimum": 1, "maximum": MAX_SIZE}
        elif k in ("nonnegint",):
            s = {"type": "integer", "minimum": 0, "maximum": MAX_SIZE}
        elif k == "int":
            s = {"type": "integer", "minimum": -MAX_SIZE, "maximum": MAX_SIZE}
        elif k == "number":
            s = {"type": "number"}
        elif k == "posnumber":
            s = {"type": "number", "exclusiveMinimum": 0}
        elif k == "prob":
            s = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
        elif k == "bool":
            s = {"type": "boolean"}
        elif k in ("pair", "nonnegpair"):
            lo = 1 if k == "pair" else 0
            item = {"type": "integer", "minimum": lo, "maximum": MAX_SIZE}
            s = {"oneOf": [item, {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]}
        elif k == "choice":
            s = {"enum": list(self.choices)}
        elif k == "names":
            s = {"type": "array", "items": _IDENT_SCHEMA, "minItems": 1, "maxItems": MAX_NAMES,
                 "uniqueItems": True}
        elif k == "mapping":
            item = {"expr": {"oneOf": [{"type": "string", "maxLength": MAX_EXPR_CHARS},
                                       {"type": "number"}]},
                    "number": {"type": "number"},
                    "control": {"$ref": "#/$defs/control"}}[self.item]
            s = {"type": "object", "propertyNames": _IDENT_SCHEMA, "additionalProperties": item,
                 "maxProperties": MAX_NAMES}
        else:  # pragma: no cover - guarded by the registry tests
            raise ValueError(k)
        if self.doc:
            s["description"] = self.doc
        if not self.required:
            default = self.default
            s["default"] = list(default) if isinstance(default, tuple) else default
        return s


_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_IDENT_SCHEMA = {"type": "string", "pattern": _IDENT_RE.pattern}


def _ident(v: Any, path: str) -> str:
    if not isinstance(v, str) or not _IDENT_RE.match(v):
        raise SpecError(f"expected a name of letters, digits and '_' starting with a letter, got "
                        f"{short(v)}", path=path)
    return v


def _names(v: Any, path: str) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise SpecError(f"expected a non-empty list of names, e.g. [x1, x2], got {short(v)}",
                        path=path)
    if len(v) > MAX_NAMES:
        raise SpecError(f"{len(v):,} names; a stage has at most {MAX_NAMES}", path=path)
    seen: set[str] = set()
    for i, n in enumerate(v):
        _ident(n, f"{path}[{i}]")
        if n in seen:
            raise SpecError(f"the name '{n}' is listed twice", path=f"{path}[{i}]")
        seen.add(n)
    return tuple(v)


@dataclass(frozen=True)
class ControlDecl:
    """A control θ owned by an op: its name, shape and default admissible set."""

    name: str
    shape: Shape
    default: ControlSet
    primary: bool = True  # a plain ``control: <set>`` in the spec applies to primary controls
    weight: bool = True  # running costs without ``on`` (l1, l2) apply to weights only


class Op:
    """Base class of ops. Subclasses set ``name``, ``params`` and implement the methods."""

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    composite: ClassVar[bool] = False  # holds inner stages (residual)
    random: ClassVar[bool] = False  # draws random numbers in training mode (dropout)

    def controls(self, p: dict[str, Any], in_shapes: Sequence[Shape]) -> list[ControlDecl]:
        """The controls θ_t of a stage with spec parameters ``p``."""
        return []

    def buffers(self, p: dict[str, Any], in_shapes: Sequence[Shape]) -> dict[str, torch.Tensor]:
        """Non-control state of the stage (e.g. BatchNorm running statistics)."""
        return {}

    def buffer_numel(self, p: dict[str, Any], in_shapes: Sequence[Shape]) -> int:
        """How many numbers :meth:`buffers` holds (for the memory estimate, before allocating)."""
        return 0

    def out_shape(self, p: dict[str, Any], in_shapes: Sequence[Shape], where: str) -> Shape:
        """Output sample shape; raise :class:`ShapeError` naming ``where`` when inputs do not fit."""
        return in_shapes[0]

    def flops(self, p: dict[str, Any], in_shapes: Sequence[Shape], out: Shape) -> int:
        """Floating-point operations per sample of the forward map (multiply-add = 2)."""
        return 0

    def forward(self, p: dict[str, Any], xs: Sequence[torch.Tensor], theta: dict[str, torch.Tensor],
                buffers: dict[str, torch.Tensor], *, train: bool, update_stats: bool,
                ctx: dict[str, Any]) -> torch.Tensor:
        """f_t(x, θ) batched over samples (dim 0). ``update_stats`` lets BatchNorm update its
        running statistics; ``ctx`` records random draws (dropout masks) so that a stage can be
        re-evaluated exactly, e.g. by the Hamiltonian."""
        raise NotImplementedError

    def check_params(self, p: dict[str, Any], path: str) -> dict[str, Any]:
        """Cross-field validation of the validated parameters ``p`` of a stage at ``path``
        (raise :class:`SpecError`); returns the parameters to keep."""
        return p


OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to the registry under ``cls.name``."""
    OPS[cls.name] = cls()
    return cls


def get_op(name: str, path: str = "") -> Op:
    if name not in OPS:
        raise SpecError(f"unknown op '{name}'{did_you_mean(name, OPS)}; known ops: "
                        f"{', '.join(sorted(OPS))}", path=path)
    return OPS[name]


def real_weight(shape: Shape, primary: bool = True) -> ControlDecl:
    return ControlDecl("weight", shape, Real("kaiming_uniform"), primary)


def real_bias(shape: Shape, fan_in: int) -> ControlDecl:
    """A bias initialised like torch's: U(±1/sqrt(fan_in))."""
    return ControlDecl("bias", shape, Real("uniform", 1.0 / math.sqrt(max(fan_in, 1))), False,
                       False)


def same_shapes(in_shapes: Sequence[Shape], where: str, what: str) -> Shape:
    first = in_shapes[0]
    for s in in_shapes[1:]:
        if tuple(s) != tuple(first):
            raise ShapeError(f"{what} needs inputs of one shape, got {list(first)} and {list(s)};"
                             " insert a dense/conv stage or a pool to make them agree", path=where)
    return tuple(first)


def numel(shape: Shape) -> int:
    return int(math.prod(shape))


Forward = Callable[..., torch.Tensor]
