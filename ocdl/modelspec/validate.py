"""Validation of the spec's plain-data form (dicts, lists, scalars) into a :class:`ModelSpec`.

Every violation raises :class:`ocdl.errors.SpecError` with the field path (``stages[3].units``);
the YAML loader adds the file and line. Misspelled keys, ops and sets get a "did you mean".
"""
from __future__ import annotations

import math
import os
import re
import sys
import warnings
from typing import Any

from ..controls import ControlSet, control_from_dict
from ..data.options import data_options_from_dict
from ..errors import SpecDeprecationWarning, SpecError, cut, did_you_mean, short
from .. import limits
from ..ops import get_op
from .model import (RUNNING_COSTS, SPEC_VERSION, TERMINAL_COSTS, CostSpec, EquationModelSpec,
                    ModelSpec, NetworkSpec, RunningCost, StageSpec)

TOP_KEYS = ("ocdl", "name", "description", "input", "stages", "cost", "data", "initial_controls",
            "system")
STAGE_KEYS = ("name", "op", "inputs", "control", "stages")
RUNNING_KEYS = ("type", "weight", "apply_to")
_HERE = os.path.dirname(os.path.abspath(__file__))
OLD_APPLY_TO = "on"  # the running-cost key before 'apply_to' (YAML 1.1 reads it as true)
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
INPUT = "input"


def _unknown_key(key: Any, allowed: list[str] | tuple[str, ...], path: str, what: str) -> SpecError:
    return SpecError(f"unknown key {short(str(key))} in {what}{did_you_mean(str(key), allowed)}; "
                     f"allowed: {', '.join(allowed)}", path=path)


def spec_from_dict(d: Any, *, lines: dict[str, int] | None = None,
                   file: str | None = None) -> ModelSpec:
    """Validate ``d`` and build a :class:`ModelSpec`; errors are located with ``lines``/``file``."""
    from ..symbolic.expressions import expression_budget
    try:
        with expression_budget():
            return _spec(d, lines or {}, file)
    except SpecError as e:
        if e.file:
            raise
        raise e.located(file, locate(e.path, lines or {})) from None


def locate(path: str, lines: dict[str, int]) -> int | None:
    """Line of ``path`` or of its nearest enclosing field."""
    p = path
    while p:
        if p in lines:
            return lines[p]
        cut = max(p.rfind("."), p.rfind("["))
        p = p[:cut] if cut > 0 else ""
    return lines.get("", None)


def _spec(d: Any, lines: dict[str, int], file: str | None) -> ModelSpec:
    lines = dict(lines)
    if not isinstance(d, dict):
        raise SpecError("a model spec must be a mapping with keys ocdl, name, input, stages, cost")
    for k in d:
        if k not in TOP_KEYS:
            raise _unknown_key(k, TOP_KEYS, str(k), "the model spec")
    version = d.get("ocdl")
    if version is None:
        raise SpecError(f"missing 'ocdl: {SPEC_VERSION}' (the spec version) at the top", path="ocdl")
    if version != SPEC_VERSION:
        raise SpecError(f"unsupported spec version {short(version)}; this ocdl reads version "
                        f"{SPEC_VERSION}", path="ocdl")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("expected a non-empty model name", path="name")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise SpecError("expected a text", path="description")
    if "system" in d:
        return _equation_model(d, name, description, lines, file)
    shape = d.get("input")
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise SpecError(f"expected the input sample shape as a list of positive integers such as"
                        f" [784] or [3, 32, 32], got {short(d.get('input'))}", path="input")
    if len(shape) > limits.MAX_RANK or max(shape) > limits.MAX_SIZE:
        raise SpecError(f"the input shape {short(shape)} is too large: at most {limits.MAX_RANK} "
                        f"dimensions of at most {limits.MAX_SIZE:,} each", path="input")
    if math.prod(shape) > limits.MAX_STATE_NUMEL:
        raise SpecError(f"the input shape {short(shape)} holds {math.prod(shape):,} numbers per "
                        f"sample; at most {limits.MAX_STATE_NUMEL:,} are allowed", path="input")
    raw_stages = d.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpecError("expected a non-empty list of stages", path="stages")
    names: set[str] = set()
    counters: dict[str, int] = {}
    stages = tuple(_stage(s, f"stages[{i}]", names, counters, top=True)
                   for i, s in enumerate(raw_stages))
    cost = _cost(d.get("cost"), "cost", lines, file)
    data = data_options_from_dict(d["data"], "data") if d.get("data") is not None else None
    init = None
    if "initial_controls" in d:
        from .initial import initial_from_spec
        init = initial_from_spec(d["initial_controls"], file)
    return NetworkSpec(name=name, input=tuple(shape), stages=stages, cost=cost, data=data,
                       initial_controls=init, description=description, source=file,
                       lines=dict(lines))


def _equation_model(d: dict[str, Any], name: str, description: str, lines: dict[str, int],
                    file: str | None) -> ModelSpec:
    """A model given as equations (``system:``, see :mod:`ocdl.modelspec.equations`): it has no
    network keys; its state vector (the ``input``) is the named states."""
    from .equations import equation_spec_from_dict
    for k in ("input", "stages", "cost", "data", "initial_controls"):
        if k in d:
            raise SpecError(f"'{k}' belongs to network specs; an equation-defined model gives its "
                            "states, controls, dynamics and cost inside 'system'", path=k)
    eq = equation_spec_from_dict(d["system"], "system")
    return EquationModelSpec(name=name, description=description, source=file,
                             lines=dict(lines), system=eq)


def _stage(s: Any, path: str, names: set[str], counters: dict[str, int], top: bool) -> StageSpec:
    if isinstance(s, str):  # shorthand: "- relu"
        s = {"op": s}
    if not isinstance(s, dict):
        raise SpecError(f"expected a stage mapping like {{op: dense, units: 10}}, got {short(s)}",
                        path=path)
    if "op" not in s:
        raise SpecError("a stage needs an 'op'", path=path)
    op_name = s["op"]
    if not isinstance(op_name, str):
        raise SpecError(f"expected an op name, got {short(op_name)}", path=f"{path}.op")
    op = get_op(op_name, f"{path}.op")
    allowed = list(STAGE_KEYS) + list(op.params)
    for k in s:
        if k not in allowed:
            raise _unknown_key(k, allowed, f"{path}.{k}", f"a {op_name} stage")
    # name
    name = s.get("name")
    if name is None:
        counters[op_name] = counters.get(op_name, 0) + 1
        name = f"{op_name}{counters[op_name]}"
        while name in names:
            counters[op_name] += 1
            name = f"{op_name}{counters[op_name]}"
    if not isinstance(name, str) or not NAME_RE.match(name) or name == INPUT:
        raise SpecError(f"expected a stage name of letters, digits, '_' or '-' (not 'input'), "
                        f"got {short(name)}", path=f"{path}.name")
    if name in names:
        raise SpecError(f"duplicate stage name '{cut(name, 60)}'; stage names must be unique",
                        path=f"{path}.name")
    names.add(name)
    if len(names) > limits.MAX_STAGES:
        raise SpecError(f"more than {limits.MAX_STAGES:,} stages (inner stages of residual blocks "
                        "included); a model spec has at most that many", path=path)
    # params
    params: dict[str, Any] = {}
    for pname, param in op.params.items():
        if pname in s:
            params[pname] = param.validate(s[pname], f"{path}.{pname}")
        elif param.required:
            raise SpecError(f"a {op_name} stage needs '{pname}' ({param.doc})", path=path)
        else:
            params[pname] = param.default
    params = op.check_params(params, path)
    # inputs
    inputs = s.get("inputs")
    if inputs is not None:
        if not top:
            raise SpecError("stages inside a residual block form a chain and take no 'inputs'",
                            path=f"{path}.inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise SpecError(f"expected a stage name or a list of stage names, got {short(inputs)}",
                            path=f"{path}.inputs")
        inputs = tuple(inputs)
    n_in = len(inputs) if inputs is not None else 1
    if not op.min_inputs <= n_in <= op.max_inputs:
        want = (f"{op.min_inputs}" if op.min_inputs == op.max_inputs
                else f"at least {op.min_inputs}")
        raise SpecError(f"{op_name} takes {want} input(s), got {n_in}; list them in 'inputs'",
                        path=f"{path}.inputs" if inputs is not None else path)
    # control
    control: ControlSet | dict[str, ControlSet] | None = None
    if "control" in s and s["control"] is not None:
        c = s["control"]
        if isinstance(c, dict) and "set" not in c:
            control = {str(k): control_from_dict(v, f"{path}.control.{k}") for k, v in c.items()}
        else:
            control = control_from_dict(c, f"{path}.control")
    # inner stages
    inner: tuple[StageSpec, ...] = ()
    if op.composite:
        raw = s.get("stages")
        if not isinstance(raw, list) or not raw:
            raise SpecError(f"a {op_name} stage needs 'stages', a non-empty list of inner stages",
                            path=f"{path}.stages")
        inner = tuple(_stage(x, f"{path}.stages[{i}]", names, counters, top=False)
                      for i, x in enumerate(raw))
        if control is not None:
            raise SpecError("set 'control' on the inner stages of a residual block, not on the"
                            " block", path=f"{path}.control")
    elif "stages" in s:
        raise SpecError(f"only residual stages hold inner 'stages', not {op_name}",
                        path=f"{path}.stages")
    return StageSpec(name=name, op=op_name, params=params, inputs=inputs, control=control,
                     stages=inner)


def _cost(c: Any, path: str, lines: dict[str, int] | None = None,
          file: str | None = None) -> CostSpec:
    if c is None:
        raise SpecError("missing 'cost'; give at least a terminal cost, e.g. "
                        "cost: {terminal: cross_entropy}", path=path)
    if isinstance(c, str):
        c = {"terminal": c}
    if not isinstance(c, dict):
        raise SpecError(f"expected a mapping with 'terminal' and optional 'running', got "
                        f"{short(c)}", path=path)
    for k in c:
        if k not in ("terminal", "running"):
            raise _unknown_key(k, ("terminal", "running"), f"{path}.{k}", "cost")
    term = c.get("terminal")
    if isinstance(term, dict):
        if set(term) - {"type"}:
            raise SpecError("a terminal cost takes only 'type'", path=f"{path}.terminal")
        term = term.get("type")
    if not isinstance(term, str) or term not in TERMINAL_COSTS:
        raise SpecError(f"unknown terminal cost {short(term)}"
                        f"{did_you_mean(str(term), TERMINAL_COSTS)}; choose one of "
                        f"{', '.join(TERMINAL_COSTS)}", path=f"{path}.terminal")
    running = c.get("running") or []
    if not isinstance(running, list):
        raise SpecError("expected a list of running costs like [{type: l1, weight: 1e-7}]",
                        path=f"{path}.running")
    terms = [_running(r, f"{path}.running[{i}]", lines if lines is not None else {}, file)
             for i, r in enumerate(running)]
    return CostSpec(terminal=term, running=tuple(terms))


def _running(r: Any, rp: str, lines: dict[str, int], file: str | None) -> RunningCost:
    """One running cost ``{type, weight, apply_to}`` (``on`` read as ``apply_to``, with a
    :class:`SpecDeprecationWarning`)."""
    if not isinstance(r, dict):
        raise SpecError(f"expected a mapping like {{type: l1, weight: 1e-7}}, got {short(r)}",
                        path=rp)
    old = [k for k in r if k == OLD_APPLY_TO or k is True]  # True: 'on' read by YAML 1.1
    for k in r:
        if k not in RUNNING_KEYS and not any(k is o for o in old):
            raise _unknown_key(k, RUNNING_KEYS, f"{rp}.{k}", "a running cost")
    typ = r.get("type")
    if not isinstance(typ, str) or typ not in RUNNING_COSTS:
        raise SpecError(f"unknown running cost {short(typ)}{did_you_mean(str(typ), RUNNING_COSTS)}"
                        f"; choose one of {', '.join(RUNNING_COSTS)}", path=f"{rp}.type")
    w = r.get("weight")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
        raise SpecError(f"expected a non-negative weight, got {short(w)}", path=f"{rp}.weight")
    key: Any = "apply_to"
    if old:
        if "apply_to" in r or len(old) > 1:
            raise SpecError("give the targets once, under 'apply_to' ('on' is its old name)",
                            path=f"{rp}.{OLD_APPLY_TO}")
        key = old[0]
        _warn_old_key(rp, lines, file)
    targets = r.get(key)
    kp = f"{rp}.{OLD_APPLY_TO}" if old else f"{rp}.apply_to"
    if targets is not None:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(x, str) for x in targets):
            raise SpecError("expected a list of stage or control names", path=kp)
        targets = tuple(targets)
    return RunningCost(type=typ, weight=float(w), apply_to=targets)


def _warn_old_key(rp: str, lines: dict[str, int], file: str | None) -> None:
    """Warn that ``rp`` uses ``on`` (naming file:line), and let errors in ``apply_to[i]`` find
    the line of ``on[i]``."""
    for k, v in list(lines.items()):
        if k.startswith(f"{rp}.{OLD_APPLY_TO}"):
            lines.setdefault(f"{rp}.apply_to{k[len(rp) + 3:]}", v)
    line = locate(f"{rp}.{OLD_APPLY_TO}", lines)
    where = (f"{file}:{line}: " if line else f"{file}: ") if file else ""
    message = (f"{where}{rp}: the key 'on' is deprecated (YAML 1.1 tools read it as true); "
               f"write 'apply_to' instead, e.g. {{type: l1, weight: 1.0e-7, apply_to: [fc1]}}")
    if file:  # shown with the spec's line
        warnings.warn_explicit(message, SpecDeprecationWarning, file, line or 0)
        return
    level, frame = 1, sys._getframe(0)  # point at the first caller outside ocdl.modelspec
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, SpecDeprecationWarning, stacklevel=level)
