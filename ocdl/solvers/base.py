"""The solver protocol and registry (the *how*).

A solver optimises the controls θ of a :class:`ocdl.system.System`. It never sees the dataset or
the model spec, only the System and batches (x, y):

    solver = make_solver("emsa-ternary", overrides={"rho": 0.3})
    state = solver.init(system)                 # raises SolverError for sets it cannot handle
    state, metrics = solver.step(system, state, x, y)   # updates system.theta in place
    state = solver.end_epoch(system, state, epoch, progress)  # schedules (α decay, lr decay)

``state`` is a plain dict of tensors and Python scalars (so ``torch.save`` checkpoints it);
``metrics`` is a dict of 0-d tensors kept on the device (the run loop decides when to sync).

**Settings.** A solver is a composition of parts (:mod:`ocdl.solvers.settings`): ``parts`` maps
a block name to the :class:`~ocdl.solvers.settings.Part` that owns its settings, ``aliases`` is
the solver's one table flat name → ``block.key`` (``top`` holds the settings outside any block,
such as ``sets`` and ``seed``), and ``part_defaults`` the defaults where this solver's differ from
the part's. ``defaults`` and ``choices`` (flat) are derived from them; a solver without parts may
declare flat ``defaults`` itself. Settings are checked once, in the constructor: an unknown name,
a value of the wrong type (each setting's type is that of its default; an int is accepted for a
float) or one outside its range (each part's ``check``, then :meth:`Solver.validate`) is a
:class:`SolverError`. ``hp`` holds the resolved settings by flat name (what run records keep),
``settings`` the same as blocks (what the parts read).

The optional top-level setting ``sets`` (when a solver declares it) narrows the control-set kinds
the solver accepts, e.g. ``[binary, real]`` for the ``emsa-binary`` preset, so that a preset meant
for binary networks refuses a ternary one. A solver with an ``lr_schedule`` block
(:class:`~ocdl.solvers.schedules.LrSchedule`) scales every learning rate it uses by ``lr_scale``
from the state, moved at the end of every epoch.
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import torch

from ..errors import ControlSetError, SolverError, did_you_mean
from ..system import System
from .schedules import LrSchedule
from .settings import Layout, Part, Require

SOLVERS: dict[str, type["Solver"]] = {}


def register_solver(cls: type["Solver"]) -> type["Solver"]:
    """Class decorator: add a solver class to the registry under ``cls.name``. A name taken by
    another class is a :class:`SolverError` (the same class defined again, e.g. a user's solver
    file loaded anew, replaces itself)."""
    old = SOLVERS.get(cls.name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise SolverError(f"solver name '{cls.name}' of {cls.__module__}.{cls.__qualname__} is "
                          f"taken by {old.__module__}.{old.__qualname__}; choose another name")
    SOLVERS[cls.name] = cls
    return cls


def _yaml_word(v: Any) -> str:
    """A setting's value as a user writes it in YAML or ``--set`` (true/false, not True/False)."""
    return str(v).lower() if isinstance(v, bool) else str(v)


def _merged(cls: type, attr: str) -> dict[str, dict[str, Any]]:
    """``attr`` (block → {key: value}) merged over the classes of ``cls``'s MRO, base first."""
    out: dict[str, dict[str, Any]] = {}
    for c in reversed(cls.__mro__):
        for block, values in c.__dict__.get(attr, {}).items():
            out[block] = {**out.get(block, {}), **values}
    return out


class Solver(abc.ABC):
    """Base class. Subclasses declare ``name``, ``supports`` (control-set kinds they can
    optimise) and their settings — ``parts``, ``aliases``, ``top``, ``part_defaults`` (see the
    module docstring), or flat ``defaults`` — and implement ``init`` and ``step``.

    ``choices`` maps a setting to its allowed values (over those of the parts); ``doc`` is a
    one-line description shown by :func:`ocdl.solvers.list_solvers`; ``top_docs`` says in one
    line what each ``top`` setting does (the parts' settings have their ``DOCS``).
    """

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    supports: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[dict[str, type[Part]]] = {}
    aliases: ClassVar[dict[str, str]] = {}
    top: ClassVar[dict[str, Any]] = {}
    top_docs: ClassVar[dict[str, str]] = {
        "sets": "the control-set kinds the preset accepts, e.g. [ternary, real] (null: all the "
                "solver handles)",
        "seed": "seed of the solver's own draws (M̄'s start, the latent weights' init); follows "
                "--seed unless set"}
    part_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    layout: ClassVar[Layout] = Layout("", {})
    all_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        part_choices: dict[str, tuple[Any, ...]] = {}
        if cls.parts:
            over = _merged(cls, "part_defaults")
            defaults: dict[str, Any] = {}  # in the alias table's order (run records' order)
            for flat, path in cls.aliases.items():
                block, _, key = path.partition(".")
                if not key:
                    defaults[flat] = cls.top[block]
                    continue
                part = cls.parts[block]
                defaults[flat] = over.get(block, {}).get(key, part.DEFAULTS[key])
                if key in part.CHOICES:
                    part_choices[flat] = part.CHOICES[key]
            cls.defaults = {**defaults, **{k: v for k, v in cls.top.items() if k not in defaults}}
        cls.all_choices = {**part_choices, **cls.choices}
        cls.layout = Layout(cls.name, {k: cls.aliases.get(k, k) for k in cls.defaults})

    def __init__(self, **hparams: Any):
        flat = self.layout.flatten(hparams)
        self.hp: dict[str, Any] = dict(self.defaults)
        for k, v in flat.items():
            self.hp[k] = self._typed(k, v)
        self.settings: dict[str, Any] = self._blocks()
        self.validate()

    # ------------------------------------------------------------------ settings
    def _blocks(self) -> dict[str, Any]:
        """The settings as blocks: every part's own defaults, this solver's, then ``hp``."""
        over = _merged(type(self), "part_defaults")
        out: dict[str, Any] = {b: {**p.DEFAULTS, **over.get(b, {})} for b, p in self.parts.items()}
        for b, vals in self.layout.nest(self.hp).items():
            if isinstance(out.get(b), dict) and isinstance(vals, dict):
                out[b].update(vals)
            else:
                out[b] = vals
        return out

    def setting_name(self, path: str) -> str:
        """The flat name of the setting ``path`` (``block.key``), or the path if it has none."""
        return self.layout.flat.get(path, path)

    def _typed(self, key: str, v: Any) -> Any:
        """Check ``v`` against the type of the default of ``key`` (and ``choices``)."""
        d = self.defaults[key]
        where = f"solver '{self.name}' setting '{key}'"
        if key in self.all_choices:
            if v not in self.all_choices[key]:
                names = [_yaml_word(c) for c in self.all_choices[key]]
                raise SolverError(f"{where} must be one of {', '.join(names)}, got "
                                  f"{_yaml_word(v) if isinstance(v, bool) else repr(v)}"
                                  f"{did_you_mean(str(v), names)}")
            return v
        if isinstance(d, bool):
            if not isinstance(v, bool):
                raise SolverError(f"{where} must be true or false, got {v!r}")
            return v
        if isinstance(d, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SolverError(f"{where} must be a finite number, got {v!r}")
            return float(v)
        if isinstance(d, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SolverError(f"{where} must be an integer, got {v!r}")
            return v
        if isinstance(d, str) and not isinstance(v, str):
            raise SolverError(f"{where} must be a string, got {v!r}")
        if isinstance(d, (list, tuple)) and not isinstance(v, (list, tuple)):
            raise SolverError(f"{where} must be a list, got {v!r}")
        return v

    def require(self, cond: bool, key: str, what: str) -> None:
        """Raise a :class:`SolverError` naming setting ``key`` (flat) unless ``cond``."""
        if not cond:
            raise SolverError(f"solver '{self.name}' setting '{key}' {what}, got "
                              f"{self.hp[key]!r}")

    def require_in(self, block: str) -> Require:
        """:meth:`require` for the settings of ``block`` by their own names."""
        return Require(self.name, block, self.settings[block], self.setting_name)

    def validate(self) -> None:
        """Range checks: every part's ``check`` on its block, then ``sets``; subclasses extend
        with the checks that span parts (raise via :meth:`require`)."""
        for block, part in self.parts.items():
            part.check(self.settings[block], self.require_in(block))
        if "sets" in self.defaults and self.hp["sets"] is not None:
            sets = self.hp["sets"]
            ok = isinstance(sets, (list, tuple)) and all(s in self.supports for s in sets)
            self.require(ok and len(sets) > 0, "sets",
                         f"must be a list of set kinds among {', '.join(self.supports)}")

    # ------------------------------------------------------------------ systems
    def accepted_kinds(self) -> tuple[str, ...]:
        """Control-set kinds this solver, with these settings, will optimise."""
        sets = self.hp.get("sets")
        return tuple(sets) if sets else self.supports

    def check_system(self, system: System) -> None:
        """Raise :class:`ControlSetError` if a control's set is not one this solver handles."""
        kinds = self.accepted_kinds()
        for c in system.controls:
            if c.cset.kind not in kinds:
                raise ControlSetError(f"solver '{self.name}' cannot optimise control {c.name} "
                                      f"with a {c.cset.describe()} set (it handles: "
                                      f"{', '.join(kinds)}); choose another solver or set")

    @abc.abstractmethod
    def init(self, system: System) -> dict[str, Any]:
        """Check the system and return the initial solver state."""

    def amp_unsafe(self, system: System) -> str | None:
        """Why this solver, as set, cannot run ``system`` with a bfloat16 forward pass
        (``run.amp``), or None when it can: a solver that only reads M = −∇_θ J from the
        reverse pass can (the default); one that evaluates Hamiltonians or feasibility errors,
        differences of near-equal states, cannot."""
        return None

    @abc.abstractmethod
    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """One iteration on a batch; updates ``system.theta`` in place."""

    def end_epoch(self, system: System, state: dict[str, Any], epoch: int,
                  progress: float | None = None) -> dict[str, Any]:
        """Per-epoch schedule hook, after epoch ``epoch`` (1-based) which ends the fraction
        ``progress`` π of the run: the learning rates' ``lr_scale`` (solvers with an
        ``lr_schedule`` block)."""
        if "lr_schedule" in self.parts:
            LrSchedule(self.settings["lr_schedule"], self.name,
                       self.setting_name("lr_schedule.end")).after_epoch(state, progress)
        return state

    def get(self, path: str) -> Any:
        """The setting ``path`` (``block.key``, or a top-level name)."""
        block, _, key = path.partition(".")
        return self.settings[block][key] if key else self.settings[block]

    def lr(self, state: dict[str, Any], key: str = "lr") -> float:
        """The learning rate ``key`` (a flat name or a ``block.key`` path) of this epoch: its
        value · ``lr_scale`` (see :class:`~ocdl.solvers.schedules.LrSchedule`)."""
        return (self.hp[key] if key in self.hp else self.get(key)) * state.get("lr_scale", 1.0)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.hp.items() if v != self.defaults.get(k)}
        inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({inner})"
