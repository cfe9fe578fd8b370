"""JSON Schema of the model spec, generated from the op registry (``ocdl schema``).

Editors (e.g. VS Code's YAML extension) can validate model files against it. The loader's own
validation (:mod:`ocdl.modelspec.validate`) is the authority and gives better messages; the schema
is kept in step with it by the tests.
"""
from __future__ import annotations

from typing import Any

from ..controls import REAL_INITS
from ..data.options import NAMED_DATASETS, PREPROCESS
from ..ops import OPS
from .. import limits
from .model import RUNNING_COSTS, SPEC_VERSION, TERMINAL_COSTS

_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"}


def _control_schema() -> dict[str, Any]:
    init = {"enum": list(REAL_INITS)}
    sets: list[dict[str, Any]] = [
        {"enum": ["real", "binary", "ternary"]},
        {"type": "object", "properties": {"set": {"const": "real"}, "init": init,
                                          "scale": {"type": "number"}},
         "required": ["set"], "additionalProperties": False},
        {"type": "object", "properties": {"set": {"const": "box"}, "lo": {"type": "number"},
                                          "hi": {"type": "number"},
                                          "init": {"enum": ["uniform_box", *REAL_INITS]}},
         "required": ["set", "lo", "hi"], "additionalProperties": False},
        {"type": "object", "properties": {"set": {"enum": ["binary", "ternary"]},
                                          "init": {"enum": ["uniform", "zeros"]}},
         "required": ["set"], "additionalProperties": False},
        {"type": "object", "properties": {"set": {"const": "levels"},
                                          "values": {"type": "array", "items": {"type": "number"},
                                                     "minItems": 2},
                                          "init": {"enum": ["uniform", "zeros"]}},
         "required": ["set", "values"], "additionalProperties": False},
    ]
    one = {"oneOf": sets}
    return {"oneOf": [*sets, {"type": "object", "not": {"required": ["set"]},
                              "additionalProperties": one}]}


def _stage_schema(op_name: str, ref: str) -> dict[str, Any]:
    op = OPS[op_name]
    props: dict[str, Any] = {"name": _NAME, "op": {"const": op_name}}
    props.update({k: p.json_schema() for k, p in op.params.items()})
    props["inputs"] = {"oneOf": [{"type": "string"}, {"type": "array",
                                                      "items": {"type": "string"}}]}
    if op.composite:
        props["stages"] = {"type": "array", "items": {"$ref": ref}, "minItems": 1}
    else:
        props["control"] = {"$ref": "#/$defs/control"}
    required = ["op"] + [k for k, p in op.params.items() if p.required]
    if op.composite:
        required.append("stages")
    return {"type": "object", "description": op.doc, "properties": props,
            "required": required, "additionalProperties": False}


def _system_schema() -> dict[str, Any]:
    """The ``system:`` block of an equation-defined model (:mod:`ocdl.modelspec.equations`)."""
    expr = {"oneOf": [{"type": "string", "maxLength": limits.MAX_EXPR_CHARS}, {"type": "number"}],
            "description": "an expression of the states, controls, constants and t (at most "
                           f"{limits.MAX_EXPR_TOKENS:,} tokens, parentheses nested at most "
                           f"{limits.MAX_EXPR_NESTING} deep, exponents at most "
                           f"{limits.MAX_EXPONENT:,}, no power inside an exponent)"}
    most = {"maxProperties": limits.MAX_NAMES}
    num = {"type": "number"}
    names = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*$"}
    return {"type": "object", "additionalProperties": False,
            "required": ["states", "controls", "horizon", "dynamics", "cost"],
            "properties": {
                "constants": {"type": "object", "propertyNames": names,
                              "additionalProperties": num, **most},
                "states": {"type": "object", "propertyNames": names, "minProperties": 1,
                           "additionalProperties": {"oneOf": [num, {
                               "type": "array", "items": num, "minItems": 1}]}, **most},
                "controls": {"type": "object", "propertyNames": names, "minProperties": 1,
                             "additionalProperties": {"$ref": "#/$defs/control"}, **most},
                "horizon": {"type": "integer", "minimum": 1, "maximum": limits.MAX_HORIZON,
                            "description": "T; also T × (number of controls) ≤ "
                                           f"{limits.MAX_EQ_CONTROLS:,}"},
                "dynamics": {"type": "object", "additionalProperties": expr, **most},
                "cost": {"type": "object", "additionalProperties": False,
                         "properties": {"running": expr, "terminal": expr}}}}


def _running_schema() -> dict[str, Any]:
    """A running cost; ``on`` is the deprecated name of ``apply_to`` (YAML 1.1 reads it as
    ``true``, so only YAML 1.2 tools see it under this name)."""
    targets = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
               "description": "the stages (or stage.control) the cost applies to; default: "
                              "every weight (l1, l2) or every stage (state_l2)"}
    return {"type": "object", "additionalProperties": False, "required": ["type", "weight"],
            "not": {"required": ["apply_to", "on"]},
            "properties": {"type": {"enum": list(RUNNING_COSTS)},
                           "weight": {"type": "number", "minimum": 0},
                           "apply_to": targets,
                           "on": {**targets, "deprecated": True,
                                  "description": "deprecated: write apply_to"}}}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a model spec file (with the limits of
    :mod:`ocdl.limits` that a schema can state)."""
    stage_ref = "#/$defs/stage"
    size = {"type": "integer", "minimum": 1, "maximum": limits.MAX_SIZE}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ocdl model spec",
        "description": "An ocdl model spec. Besides this schema the loader enforces the limits "
                       "of a model spec listed in the README (file size, nesting, aliases, "
                       "expressions, parameter memory).",
        "type": "object",
        "properties": {
            "ocdl": {"const": SPEC_VERSION, "description": "spec version"},
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "input": {"oneOf": [size, {"type": "array", "items": size, "minItems": 1,
                                       "maxItems": limits.MAX_RANK}]},
            "stages": {"type": "array", "items": {"$ref": stage_ref}, "minItems": 1,
                       "maxItems": limits.MAX_STAGES},
            "cost": {"oneOf": [{"enum": list(TERMINAL_COSTS)}, {
                "type": "object", "additionalProperties": False, "required": ["terminal"],
                "properties": {
                    "terminal": {"enum": list(TERMINAL_COSTS)},
                    "running": {"type": "array", "items": _running_schema()}}}]},
            "data": {"oneOf": [{"type": "string"}, {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "description": "one of " + ", ".join(
                        NAMED_DATASETS) + ", or a path"},
                    "split": {"type": "object", "additionalProperties": False, "properties": {
                        "train": {"type": "integer", "minimum": 1},
                        "valid": {"type": "integer", "minimum": 0}}},
                    "seed": {"type": "integer", "minimum": 0},
                    "batch_size": {"type": "integer", "minimum": 1},
                    "preprocess": {"enum": list(PREPROCESS)},
                    "flatten": {"type": ["boolean", "null"]},
                    "augment": {"type": "object", "additionalProperties": False, "properties": {
                        "crop": {"type": "integer", "minimum": 0},
                        "flip": {"type": "boolean"},
                        "cutout": {"type": "integer", "minimum": 0}}},
                    "limit": {"type": ["integer", "null"], "minimum": 1},
                    **{k: {"type": "array", "minItems": 1, "description": (
                        "inline data (name: inline): " + ("rows of numbers" if k.startswith("x")
                        else "class labels or regression targets"))}
                       for k in ("x", "y", "x_test", "y_test")}}}]},
            "initial_controls": {
                "type": "string", "minLength": 1,
                "pattern": r"\.([Pp][Tt][Hh]?|[Ss][Aa][Ff][Ee][Tt][Ee][Nn][Ss][Oo][Rr][Ss])$",
                "description": "a file of start values for the controls (and BatchNorm "
                               "statistics), names <stage>.<control> or <stage>.<statistic>; "
                               "a relative path is read from the spec's folder (written by "
                               "ocdl import-torch)"},
            "system": _system_schema(),
        },
        "required": ["ocdl", "name"],
        "oneOf": [{"required": ["input", "stages", "cost"], "not": {"required": ["system"]}},
                  {"required": ["system"], "not": {"anyOf": [
                      {"required": [k]} for k in ("input", "stages", "cost", "data",
                                                  "initial_controls")]}}],
        "additionalProperties": False,
        "$defs": {
            "stage": {"oneOf": [{"enum": [n for n, o in OPS.items() if not o.params
                                          and o.min_inputs == 1 and not o.composite]},
                                *[_stage_schema(n, stage_ref) for n in sorted(OPS)]]},
            "control": _control_schema(),
        },
    }
