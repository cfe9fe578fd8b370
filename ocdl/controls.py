"""Admissible control sets Θ_t.

A control θ_t of a stage lives in one of these sets:

* :class:`Real` — θ ∈ ℝ^n, initialised by a named rule;
* :class:`Box` — θ ∈ [lo, hi]^n;
* :class:`Binary` — θ ∈ {−1, +1}^n;
* :class:`Ternary` — θ ∈ {−1, 0, +1}^n;
* :class:`Levels` — θ ∈ {l_1 < … < l_K}^n, any finite set of levels.

Each set knows how to initialise a tensor, project onto itself and test membership. Discrete
sets initialise uniformly over their levels by default, as in Li & Hao (2018). The sets are
frozen dataclasses: they are part of the model spec (the *what*), and carry no solver state.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .errors import SpecError, did_you_mean, short

REAL_INITS = ("kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "normal",
              "uniform", "zeros", "ones")


def _fan_in(shape: tuple[int, ...]) -> int:
    if len(shape) < 2:
        return max(shape[0] if shape else 1, 1)
    return int(math.prod(shape[1:]))


def _fan_out(shape: tuple[int, ...]) -> int:
    if len(shape) < 2:
        return max(shape[0] if shape else 1, 1)
    return int(shape[0] * math.prod(shape[2:]))


@dataclass(frozen=True)
class ControlSet:
    """Base class of admissible sets. Subclasses set ``kind``."""

    kind: ClassVar[str] = ""
    discrete: ClassVar[bool] = False

    def init(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def project(self, theta: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the set (nearest point; ties go to the larger level)."""
        raise NotImplementedError

    def contains(self, theta: torch.Tensor) -> bool:
        return bool(torch.equal(self.project(theta), theta))

    def to_dict(self) -> dict[str, Any]:
        return {"set": self.kind}

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True)
class Real(ControlSet):
    """θ ∈ ℝ^n. ``init`` names the initialisation rule; ``scale`` multiplies it
    (for ``normal``/``uniform`` it is the std / half-width; for ``ones`` the value)."""

    init_rule: str = "kaiming_uniform"
    scale: float = 1.0
    kind: ClassVar[str] = "real"

    def init(self, shape, generator=None, dtype=torch.float32):
        return _real_init(self.init_rule, self.scale, shape, generator, dtype)

    def project(self, theta):
        return theta

    def contains(self, theta):
        return bool(torch.isfinite(theta).all())

    def to_dict(self):
        d: dict[str, Any] = {"set": "real", "init": self.init_rule}
        if self.scale != 1.0:
            d["scale"] = self.scale
        return d

    def describe(self):
        return f"real ({self.init_rule})"


@dataclass(frozen=True)
class Box(ControlSet):
    """θ ∈ [lo, hi]^n; initialised uniformly in the box unless ``init_rule`` says otherwise
    (then clipped into it)."""

    lo: float = -1.0
    hi: float = 1.0
    init_rule: str = "uniform_box"
    kind: ClassVar[str] = "box"

    def __post_init__(self):
        if not (self.lo < self.hi):
            raise SpecError(f"box needs lo < hi, got lo={self.lo}, hi={self.hi}")

    def init(self, shape, generator=None, dtype=torch.float32):
        if self.init_rule == "uniform_box":
            u = torch.rand(shape, generator=generator, dtype=dtype)
            return self.lo + (self.hi - self.lo) * u
        return self.project(_real_init(self.init_rule, 1.0, shape, generator, dtype))

    def project(self, theta):
        return theta.clamp(self.lo, self.hi)

    def to_dict(self):
        d: dict[str, Any] = {"set": "box", "lo": self.lo, "hi": self.hi}
        if self.init_rule != "uniform_box":
            d["init"] = self.init_rule
        return d

    def describe(self):
        return f"box [{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class Levels(ControlSet):
    """θ ∈ {l_1, …, l_K}^n for a finite, strictly increasing list of levels.

    ``init`` is ``uniform`` (each level with probability 1/K, the paper's rule) or the name of a
    level-free rule (``zeros`` picks the level nearest 0)."""

    values: tuple[float, ...] = (-1.0, 1.0)
    init_rule: str = "uniform"
    kind: ClassVar[str] = "levels"
    discrete: ClassVar[bool] = True

    def __post_init__(self):
        vals = tuple(float(v) for v in self.values)
        object.__setattr__(self, "values", vals)
        if len(vals) < 2:
            raise SpecError(f"a finite control set needs at least 2 levels, got {list(vals)}")
        if any(b <= a for a, b in zip(vals, vals[1:])):
            raise SpecError(f"levels must be strictly increasing, got {list(vals)}")
        if self.init_rule not in ("uniform", "zeros"):
            raise SpecError(f"init for a finite set must be 'uniform' or 'zeros', got "
                            f"{short(self.init_rule)}")

    def levels(self, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.tensor(self.values, device=device, dtype=dtype)

    def init(self, shape, generator=None, dtype=torch.float32):
        lv = _cpu_levels(self.values, dtype)
        if self.init_rule == "zeros":
            return torch.full(shape, float(lv[lv.abs().argmin()]), dtype=dtype)
        idx = torch.randint(len(self.values), shape, generator=generator)
        return lv[idx]

    def project(self, theta):
        lv = self.levels(theta.device, theta.dtype)
        # nearest level; searchsorted picks the upper neighbour, compare with the lower one
        hi = torch.searchsorted(lv, theta.contiguous()).clamp(1, len(lv) - 1)
        lo_v, hi_v = lv[hi - 1], lv[hi]
        return torch.where((theta - lo_v) < (hi_v - theta), lo_v, hi_v)

    def contains(self, theta):
        return bool(torch.isin(theta, self.levels(theta.device, theta.dtype)).all())

    def to_dict(self):
        d: dict[str, Any] = {"set": "levels", "values": list(self.values)}
        if self.init_rule != "uniform":
            d["init"] = self.init_rule
        return d

    def describe(self):
        return "levels {" + ", ".join(f"{v:g}" for v in self.values) + "}"


@dataclass(frozen=True)
class Binary(Levels):
    """θ ∈ {−1, +1}^n."""

    values: tuple[float, ...] = field(default=(-1.0, 1.0), init=False)
    kind: ClassVar[str] = "binary"

    def project(self, theta):
        return torch.where(theta >= 0, 1.0, -1.0).to(theta.dtype)

    def to_dict(self):
        d: dict[str, Any] = {"set": "binary"}
        if self.init_rule != "uniform":
            d["init"] = self.init_rule
        return d

    def describe(self):
        return "binary {-1,+1}"


@dataclass(frozen=True)
class Ternary(Levels):
    """θ ∈ {−1, 0, +1}^n."""

    values: tuple[float, ...] = field(default=(-1.0, 0.0, 1.0), init=False)
    kind: ClassVar[str] = "ternary"

    def to_dict(self):
        d: dict[str, Any] = {"set": "ternary"}
        if self.init_rule != "uniform":
            d["init"] = self.init_rule
        return d

    def describe(self):
        return "ternary {-1,0,+1}"


def compact_set(c: ControlSet) -> Any:
    """The spec form of a set, shortest first: ``ternary`` rather than ``{set: ternary}``."""
    d = c.to_dict()
    return d["set"] if len(d) == 1 else d


CONTROL_SETS: dict[str, type[ControlSet]] = {
    "real": Real, "box": Box, "binary": Binary, "ternary": Ternary, "levels": Levels}


def control_from_dict(d: Any, path: str = "control") -> ControlSet:
    """Build a control set from its spec form.

    Accepted forms: a string (``"ternary"``), or a mapping ``{set: box, lo: -1, hi: 1}``,
    ``{set: levels, values: [-1, 0, 1]}``, ``{set: real, init: xavier_uniform, scale: 1}``.
    """
    if isinstance(d, str):
        d = {"set": d}
    if not isinstance(d, dict):
        raise SpecError(f"expected a control set name or mapping, got {short(d)}", path=path)
    kind = d.get("set")
    if not isinstance(kind, str) or kind not in CONTROL_SETS:
        raise SpecError(f"unknown control set {short(kind)}{did_you_mean(str(kind), CONTROL_SETS)};"
                        f" choose one of {', '.join(CONTROL_SETS)}", path=f"{path}.set")
    allowed = {"real": {"init", "scale"}, "box": {"lo", "hi", "init"},
               "binary": {"init"}, "ternary": {"init"}, "levels": {"values", "init"}}[kind]
    for key in d:
        if key != "set" and key not in allowed:
            raise SpecError(f"unknown key {short(key)} for a {kind} control set"
                            f"{did_you_mean(key, allowed)}; allowed: {', '.join(sorted(allowed))}",
                            path=f"{path}.{key}")
    try:
        if kind == "real":
            rule = d.get("init", "kaiming_uniform")
            if rule not in REAL_INITS:
                raise SpecError(f"unknown init rule {short(rule)}"
                                f"{did_you_mean(str(rule), REAL_INITS)}; choose one of "
                                f"{', '.join(REAL_INITS)}", path=f"{path}.init")
            return Real(init_rule=rule, scale=_number(d.get("scale", 1.0), f"{path}.scale"))
        if kind == "box":
            for k in ("lo", "hi"):
                if k not in d:
                    raise SpecError(f"a box control set needs '{k}'", path=path)
            rule = d.get("init", "uniform_box")
            if rule != "uniform_box" and rule not in REAL_INITS:
                raise SpecError(f"unknown init rule {short(rule)}"
                                f"{did_you_mean(str(rule), REAL_INITS)}", path=f"{path}.init")
            return Box(lo=_number(d["lo"], f"{path}.lo"), hi=_number(d["hi"], f"{path}.hi"),
                       init_rule=rule)
        rule = d.get("init", "uniform")
        if kind == "levels":
            vals = d.get("values")
            if not isinstance(vals, list) or not vals:
                raise SpecError("a levels control set needs 'values', a list of numbers such as "
                                "[-1, -0.5, 0, 0.5, 1]", path=f"{path}.values")
            return Levels(values=tuple(_number(v, f"{path}.values[{i}]")
                                       for i, v in enumerate(vals)), init_rule=rule)
        return CONTROL_SETS[kind](init_rule=rule)
    except SpecError as e:
        if e.path:
            raise
        raise SpecError(e.message, path=path) from None


@functools.lru_cache(maxsize=64)
def _cpu_levels(values: tuple[float, ...], dtype: torch.dtype) -> torch.Tensor:
    """The levels as a CPU tensor, made once (an equation-defined system initialises T controls
    of one set); never modified: indexing copies."""
    return torch.tensor(values, dtype=dtype)


def _number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"expected a number, got {short(v)}", path=path)
    if not math.isfinite(v):
        raise SpecError(f"expected a finite number, got {short(v)}", path=path)
    return float(v)


def _real_init(rule: str, scale: float, shape, generator, dtype) -> torch.Tensor:
    shape = tuple(shape)
    t = torch.empty(shape, dtype=dtype)
    fan_in, fan_out = _fan_in(shape), _fan_out(shape)
    if rule == "zeros":
        return t.zero_()
    if rule == "ones":
        return t.fill_(scale)
    if rule == "normal":
        return t.normal_(0.0, scale, generator=generator)
    if rule == "uniform":
        return t.uniform_(-scale, scale, generator=generator)
    if rule == "kaiming_uniform":  # torch's default for Linear/Conv: U(±1/sqrt(fan_in))
        bound = scale / math.sqrt(fan_in)
        return t.uniform_(-bound, bound, generator=generator)
    if rule == "kaiming_normal":
        return t.normal_(0.0, scale * math.sqrt(2.0 / fan_in), generator=generator)
    if rule == "xavier_uniform":
        bound = scale * math.sqrt(6.0 / (fan_in + fan_out))
        return t.uniform_(-bound, bound, generator=generator)
    if rule == "xavier_normal":
        return t.normal_(0.0, scale * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
    raise SpecError(f"unknown init rule {short(rule)}")
