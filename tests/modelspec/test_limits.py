"""The limits of a model spec (:mod:`ocdl.limits`): each is accepted at its bound and
refused just past it, before any work, with a one-line error naming file, line and field."""
import re

import pytest

import ocdl
from ocdl.errors import OcdlError, SpecError, short
from ocdl.models import model_path
from ocdl import limits
from ocdl.modelspec.schema import json_schema


def net(stages: str, input_: str = "[4]", extra: str = "") -> str:
    return f"ocdl: 1\nname: n\ninput: {input_}\nstages:\n{stages}cost: mse\n{extra}"


def system(dyn: str = "x + u", horizon: int = 3, controls: str = "{u: real}",
           extra: str = "", running: str = "u**2") -> str:
    return (f"ocdl: 1\nname: s\nsystem:\n{extra}  states: {{x: 1.0}}\n  controls: {controls}\n"
            f"  horizon: {horizon}\n  dynamics: {{x: '{dyn}'}}\n  cost: {{running: '{running}'}}\n")


def refused(text: str, line: int, fragment: str, compile_: bool = True) -> str:
    with pytest.raises(SpecError) as e:
        spec = ocdl.loads_spec(text, "m.yaml")
        if compile_:
            spec.compile()
    msg = str(e.value)
    assert msg.startswith(f"m.yaml:{line}: "), msg
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 500
    return msg


@pytest.mark.parametrize("dyn, ok", [
    ("x**1000", True), ("x**1001", False), ("x**-1000", True), ("(x + 2)**1000", True),
    ("10**1000", True), ("10**999*10**999*10**999*10**999*10**999", False),
    ("exp(5*log(9))", True), ("exp(100000*log(2))", False), ("k**k", False),
    ("x**(1/3)", True), ("0.9**t", True), ("sigmoid(5000*x)", True), ("exp(10000*x)", False),
    ("tan(exp(1e300))", False), ("Min(tan(exp(1e3)), 1)", True),
])
def test_exponent_and_number_size(dyn, ok):
    text = system(dyn, extra="  constants: {k: 1.0e+15}\n")
    if ok:
        ocdl.loads_spec(text).compile()
    else:
        refused(text, 8, "system.dynamics.x: ")


@pytest.mark.parametrize("dyn", ["9**9**9", "x**9**9**9", "2**2**2**2**2", "2^2^2", "x**(x**2)"])
def test_powers_in_exponents_are_refused(dyn):
    refused(system(dyn), 7, "a power inside an exponent")


def test_expression_length_tokens_nesting_and_spec_budget():
    n = limits.MAX_EXPR_NESTING
    ocdl.loads_spec(system("(" * n + "x" + ")" * n))
    refused(system("(" * (n + 1) + "x" + ")" * (n + 1)), 7, f"nested more than {n} deep")
    terms = limits.MAX_EXPR_TOKENS // 2  # x+x+…: two tokens a term
    ocdl.loads_spec(system("+".join(["x"] * terms)))
    refused(system("+".join(["x"] * (terms + 1))), 7, "more than 1,000 tokens")
    refused(system("x" + " " * limits.MAX_EXPR_CHARS), 7, "characters; an expression has at "
                                                          "most 4,000")
    long = "+".join(["u"] * terms)  # 999 tokens in the dynamics and the running cost each
    ocdl.loads_spec(system(long, running=long))
    text = system(long, running=long).replace("cost: {", "cost: {terminal: 'x+x', ")
    refused(text, 8, "the expressions of this spec have more than 2,000 tokens")


def test_costate_equations_are_bounded():
    product = "*".join(f"(x+{k})" for k in range(1, 60))
    refused(system(product), 3, "system: the costate equations", compile_=False)


def test_horizon_and_controls():
    T = limits.MAX_HORIZON
    assert ocdl.loads_spec(system(horizon=T)).compile().T == T
    refused(system(horizon=T + 1), 6, f"system.horizon: the horizon {T + 1:,} is too long")
    refused(system("x + u + v", horizon=T // 2 + 1, controls="{u: real, v: real}"), 6,
            "control values; a system has at most 10,000")


def test_sizes_and_parameter_memory(monkeypatch):
    big = limits.MAX_SIZE
    refused(net(f"  - {{op: dense, units: {big + 1}}}\n"), 5, "stages[0].units: 1,000,001 is too "
                                                               "large")
    refused(net("  - {op: conv2d, channels: 4, kernel: 1000001}\n", "[3, 8, 8]"), 5,
            "stages[0].kernel: 1,000,001 is too large")
    msg = refused(net(f"  - {{op: dense, units: {big}}}\n", f"[{big}]"), 5,
                  "stages[0]: the parameters need 3,725 GiB")
    assert "over the limit of 8 GiB" in msg and limits.PARAM_GIB_ENV in msg
    quick = ocdl.load_spec(model_path("quickstart"))
    monkeypatch.setenv(limits.PARAM_GIB_ENV, "0.001")
    with pytest.raises(SpecError, match=r"quickstart.yaml:15: stages\[0\]: the parameters need "
                                        r"0\.00101 GiB \(270,888 float32 numbers"):
        quick.compile()
    refused(net("  - {op: batchnorm, affine: false}\n", "[200000, 2]"), 5,
            "0.00149 GiB (400,000 float32 numbers in the controls and BatchNorm statistics; the "
            "largest, the statistics of batchnorm1, has 400,000)")
    monkeypatch.setenv(limits.PARAM_GIB_ENV, "lots")
    with pytest.raises(OcdlError, match="OCDL_MAX_PARAM_GIB='lots' is not a positive number"):
        quick.compile()
    monkeypatch.setenv(limits.PARAM_GIB_ENV, "0.01")
    quick.compile()


def test_input_shape_and_stage_count():
    refused(net("  - relu\n", "[1, 2, 3, 4, 5, 6, 7, 8, 9]"), 3, "input: the input shape")
    refused(net("  - relu\n", "[100000, 100000]"), 3, "holds 10,000,000,000 numbers per sample")
    n = limits.MAX_STAGES
    ocdl.loads_spec(net("  - relu\n" * n))
    refused(net("  - relu\n" * (n + 1)), 5 + n, f"more than {n:,} stages", compile_=False)


def test_yaml_depth_aliases_and_numbers():
    d = limits.MAX_DEPTH - 1  # the top-level mapping is the first level
    deep = "[" * d + "]" * d
    with pytest.raises(SpecError, match="unknown key 'x'"):  # parsed: only the key is wrong
        ocdl.loads_spec(net("  - relu\n", extra=f"x: {deep}\n"), "m.yaml")
    refused(net("  - relu\n", extra=f"x: [{deep}]\n"), 7, "nested more than 32 levels deep")
    bomb = "a: &a [" + ", ".join(["1"] * 10) + "]\n" + "".join(
        f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcd", "bcde"))
    refused(net("  - relu\n", extra=bomb), 11, "more than 100,000 values (aliases expanded)")
    refused(net("  - {op: dense, units: 99999999999999999999}\n"), 5, "is out of range")
    refused(net("  - {op: dense, units: " + "1" * 101 + "}\n"), 5, "a number of 101 characters")


def test_messages_quote_long_values_cut_short():
    msg = refused(net("  - [" + ", ".join(["123456"] * 5000) + "]\n"), 5,
                  "expected a stage mapping")
    assert len(msg) < 200 and "..." in msg
    name = "n" * 10_000
    msg = refused(net(f"  - {{op: relu, name: {name}}}\n  - {{op: relu, name: {name}}}\n"), 6,
                  "duplicate stage name 'nnn")
    assert len(msg) < 200
    assert short(10**5000) == "an integer of about 5,001 digits"
    assert short("x" * 1000).count("x") < 70
    assert len(str(SpecError("y" * 10_000, path="p" * 1000, file="f", line=1))) < 600


def test_the_schema_states_the_limits():
    s = json_schema()
    text = repr(s)
    assert s["properties"]["stages"]["maxItems"] == limits.MAX_STAGES
    assert s["properties"]["system"]["properties"]["horizon"]["maximum"] == limits.MAX_HORIZON
    assert re.search(rf"'maximum': {limits.MAX_SIZE}\b", text)
    assert f"'maxLength': {limits.MAX_EXPR_CHARS}" in text
