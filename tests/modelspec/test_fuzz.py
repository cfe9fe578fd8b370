"""Property-based fuzzing of the spec loader and compiler.

Every input, however malformed, either loads, compiles and explains (what ``ocdl explain``
prints) or raises an :class:`OcdlError` whose one-line message names the file and a line, within
:data:`DEADLINE_S` seconds. The inputs are the shipped models and the nasty corpus
(``tests/modelspec/nasty``) mutated (a value replaced by a nasty one, lines deleted, duplicated or
swapped, bytes inserted, the text cut short), specs built from random structures, and
equation-defined systems of random expressions.

The default suite runs 300 derandomized cases with twice the deadline (the suite shares the
machine with other work); ``-m slow`` runs 5,000 random ones with the deadline. Both compile
with a parameter-memory limit of :data:`FUZZ_PARAM_GIB` GiB (the ``OCDL_MAX_PARAM_GIB``
setting): a valid network of a few GiB compiles under the default 8 GiB limit, as slowly as its
parameters take to initialise, which is not what this test is about.
"""
from __future__ import annotations

import io
import os
import random
import re
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import pytest
import sympy  # noqa: F401  (imported once here, not inside the first timed case)
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ocdl.errors import OcdlError
from ocdl.explain import describe
from ocdl.models import model_names, model_path
from ocdl.ops import OPS
from ocdl.modelspec import load_spec
from tests.conftest import ROOT

DEADLINE_S = 1.0  # the -m slow run; the default suite allows twice that on a busy machine
FUZZ_PARAM_GIB = "0.0625"  # 64 MiB: the largest shipped model needs 56 MB
MAX_MESSAGE_CHARS = 600

MODELS = [model_path(n) for n in model_names()]
NASTY = sorted((ROOT / "tests/modelspec/nasty").glob("*.yaml"))
SEEDS = MODELS + NASTY

NASTY_VALUES = [
    "0", "-1", "1", "3", "2048", "65536", "1000001", "2147483648", "1000000000000000",
    "99999999999999999999", "9" * 5000, "0b" + "1" * 300, "0x7fffffff", "1:2:3:4:5", "1_000",
    ".nan", ".inf", "-.inf", "1e999", "1.0e-400", "-0.0", "null", "~", "true", "false", "on",
    "'on'", "yes", "''", "'x'", "[]", "{}", "[[[[[[[[[[1]]]]]]]]]]", "[" * 100 + "]" * 100,
    "{a: {b: {c: {d: 1}}}}", "[1, 2, 3]", "[0, 0]", "[1000000, 1000000]", "[3, 32, 32]",
    "{set: {a: 1}}", "{set: ternary, init: [1]}", "{set: levels, values: [1, 1]}",
    "{set: box, lo: 1, hi: 0}", "*nowhere", "&a [*a]", "!!python/object:os.system []",
    "!!binary AAAA", "!!timestamp 2001-13-45", "2001-12-14", "!mytag x", '"\\0"', '"\\x07"',
    '"\\uFFFE"', "'" + "x" * 5000 + "'", "relu", "dense", "residual", "input", "fc1",
    "'9**9**9'", "'x**9**9**9'", "'2**2**2**2**2'", "'exp(387420489*log(9))'",
    "'" + "+".join(["x"] * 1500) + "'", "'" + "(" * 50 + "x" + ")" * 50 + "'",
    "'__import__(\"os\")'", "'x.real'", "'x1**1000'", "'x1**1001'", "'(x1+10)**1000'",
    "'sigmoid(x1)*tanh(u)'", "'1/0'", "'log(0)'", "'sqrt(-1)'", "'x1 +'", "'Max(x1, u, 3)'",
    "'10**999*10**999*10**999*10**999*10**999'", "'k**k'", "'t**t'", "'0.9**t'",
]
NASTY_TEXT = [
    "\x00", "\x07", "\t", "\r", "\ufeff", "\ud800", "---\n", "...\n", "&a ", "*a ", "<<: *a\n",
    "? ", ": ", "- ", "{", "}", "[", "]", "#", "'", '"', "!!", "%YAML 1.1\n", "\\",
    "\n  - {op: dense, units: 1000000}\n", "\nhorizon: 100000000\n", "\n" + "  " * 40 + "x: 1",
]
# "key: value" inside a block or flow mapping
_SCALAR = re.compile(rb"(?P<key>[A-Za-z_][A-Za-z0-9_]*): (?P<value>[^,{}\[\]\n#]+)")


@st.composite
def mutated(draw) -> bytes:
    """A seed text with one to three mutations."""
    seeds = draw(st.sampled_from([MODELS, MODELS, MODELS, NASTY]))
    text = draw(st.sampled_from(seeds)).read_bytes()
    rnd = random.Random(draw(st.integers(0, 2**32)))  # uniform positions (integers favour ends)
    for _ in range(draw(st.integers(1, 3))):
        kind = rnd.choice(["value"] * 10 + ["delete", "duplicate", "swap", "insert", "truncate"])
        lines = text.split(b"\n")
        if kind == "value":  # below the header, so that most mutants reach the compiler
            found = [m for m in _SCALAR.finditer(text) if m.group("key") not in (b"ocdl", b"name")]
            if not found:
                continue
            m = rnd.choice(found)
            new = draw(st.sampled_from(NASTY_VALUES)).encode("utf-8", "surrogatepass")
            text = text[:m.start("value")] + new + text[m.end("value"):]
        elif kind == "delete" and len(lines) > 1:
            del lines[rnd.randrange(len(lines))]
            text = b"\n".join(lines)
        elif kind == "duplicate":
            i = rnd.randrange(len(lines))
            lines.insert(i, lines[i])
            text = b"\n".join(lines)
        elif kind == "swap" and len(lines) > 1:
            i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = b"\n".join(lines)
        elif kind == "insert":
            at = rnd.randint(0, len(text))
            junk = draw(st.one_of(st.sampled_from(NASTY_TEXT).map(
                lambda s: s.encode("utf-8", "surrogatepass")), st.binary(min_size=1, max_size=8)))
            text = text[:at] + junk + text[at:]
        elif kind == "truncate":
            text = text[:rnd.randint(len(text) // 3, len(text))]
    return text


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from(["relu", "dense", "ternary", "x", "on", "9**9**9", ""]),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4)
                       | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


@st.composite
def structured(draw) -> bytes:
    """A spec built from random stages, params and values, dumped as YAML."""
    stages = []
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(sorted(OPS)))
        stage = {"op": op}
        for p in OPS[op].params:
            if draw(st.booleans()):
                stage[p] = draw(st.one_of(st.integers(-3, 2**40), _values))
        if draw(st.integers(0, 4)) == 0:
            stage["control"] = draw(st.one_of(st.sampled_from(["ternary", "binary", "real"]),
                                              _values))
        stages.append(stage)
    spec = {"ocdl": 1, "name": "fuzz",
            "input": draw(st.one_of(st.lists(st.integers(1, 64), min_size=1, max_size=3),
                                    st.lists(st.integers(-1, 2**21), min_size=1, max_size=4),
                                    _values)),
            "stages": stages,
            "cost": draw(st.one_of(st.sampled_from(["mse", "cross_entropy"]), _values))}
    if draw(st.booleans()):
        spec["system"] = {"states": {"x": 1.0}, "controls": {"u": "real"},
                          "horizon": draw(st.integers(-1, 2**31)),
                          "dynamics": {"x": draw(st.sampled_from(NASTY_VALUES)).strip("'")},
                          "cost": {"running": "u**2"}}
        for k in ("input", "stages", "cost"):
            spec.pop(k)
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for k in list(spec):
        if rnd.random() < 0.1:
            spec[k] = draw(_values)
    return yaml.safe_dump(spec, allow_unicode=True).encode("utf-8", "surrogatepass")


_leaves = st.one_of(st.sampled_from(["x", "y", "u", "dt", "k", "t", "pi", "x1", "2", "0.5", "0",
                                     "1e-300", "1e300", "9", "1000", "1001", "123456789"]),
                    st.integers(-10**6, 10**6).map(str), st.floats(-1e6, 1e6).map(repr))


def _combine(parts):
    def binary(ab):
        return f"({ab[0]}){ab[2]}({ab[1]})"

    return st.one_of(
        st.tuples(parts, parts, st.sampled_from(["+", "-", "*", "/", "**", "^"])).map(binary),
        st.tuples(st.sampled_from(["sin", "cos", "tan", "tanh", "exp", "log", "sqrt", "Abs",
                                   "sign", "relu", "sigmoid", "-"]), parts).map(
            lambda fa: f"{fa[0]}({fa[1]})"),
        st.tuples(st.sampled_from(["Max", "Min"]), st.lists(parts, min_size=1, max_size=4)).map(
            lambda fa: f"{fa[0]}({', '.join(fa[1])})"),
        st.tuples(parts, st.integers(2, 60), st.sampled_from(["+", "*"])).map(
            lambda pno: pno[2].join([f"({pno[0]})"] * pno[1])))


_expressions = st.recursive(_leaves, _combine, max_leaves=20)


@st.composite
def equations(draw) -> bytes:
    """An equation-defined system of random expressions."""
    k = draw(st.sampled_from([1.0, 9.0, 0.5, 1e15, -3.0]))
    horizon = draw(st.sampled_from([1, 3, 20, 2000, 10000, 10001]))
    system = {"constants": {"dt": 0.1, "k": k}, "states": {"x": 1.0, "y": [0.0, 0.5]},
              "controls": {"u": draw(st.sampled_from(["real", "ternary", "binary"]))},
              "horizon": horizon,
              "dynamics": {"x": draw(_expressions), "y": draw(_expressions)},
              "cost": {"running": draw(_expressions), "terminal": draw(_expressions)}}
    spec = {"ocdl": 1, "name": "fuzz-equations", "system": system}
    return yaml.safe_dump(spec).encode()


def explain(system) -> str:
    """What ``ocdl explain`` prints for a compiled system."""
    shown = describe(system)
    if isinstance(shown, str):
        return shown
    out = io.StringIO()
    Console(file=out, width=160).print(shown)
    return out.getvalue()


def check_one(text: bytes, folder: str, deadline: float = DEADLINE_S) -> None:
    """The property: loads, compiles and explains, or raises a one-line OcdlError naming
    file:line; within the deadline."""
    path = os.path.join(folder, "spec.yaml")
    Path(path).write_bytes(text)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explain(load_spec(path).compile(device="cpu"))
    except OcdlError as e:
        msg = str(e)
        assert re.match(rf"{re.escape(path)}:\d+: ", msg), msg[:300]
        assert "\n" not in msg and len(msg) <= MAX_MESSAGE_CHARS, msg[:300]
    elapsed = time.perf_counter() - start
    assert elapsed < deadline, f"{elapsed:.2f} s for {text[:300]!r}"


def _fuzz(text: bytes, deadline: float) -> None:
    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.dict(os.environ, {"OCDL_MAX_PARAM_GIB": FUZZ_PARAM_GIB}):
        check_one(text, folder, deadline)


_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])


SPECS = st.one_of(mutated(), mutated(), mutated(), structured(), equations())


@settings(max_examples=300, derandomize=True, **_COMMON)
@given(SPECS)
def test_fuzz_specs(text):
    _fuzz(text, 2 * DEADLINE_S)


@pytest.mark.slow
@settings(max_examples=5000, **_COMMON)
@given(SPECS)
def test_fuzz_specs_5000(text):
    _fuzz(text, DEADLINE_S)


@pytest.mark.parametrize("seed", SEEDS, ids=[p.name for p in SEEDS])
def test_every_seed_meets_the_property(seed, tmp_path):
    with mock.patch.dict(os.environ, {"OCDL_MAX_PARAM_GIB": FUZZ_PARAM_GIB}):
        check_one(seed.read_bytes(), str(tmp_path), 2 * DEADLINE_S)
