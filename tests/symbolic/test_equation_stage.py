"""The ``equation`` op: a stage given by expressions inside a network spec.

Compiles between dense layers, costates/M against finite differences and per-stage Hamiltonians,
YAML ↔ DSL round trip and the JSON Schema, clear errors, solvers, and the casadi export."""
import numpy as np
import pytest
import torch

import ocdl
from ocdl import Box, Model, Ternary
from ocdl.solvers import make_solver
from ocdl.modelspec.validate import spec_from_dict
from tests.test_system import check_costate_recursion, fd_check

D = torch.float64
DYN = {"x1": "x1 + dt*x2", "x2": "x2 + dt*(a*tanh(x1) + b)"}

YAML = """\
ocdl: 1
name: eqnet
input: [3]
stages:
  - {name: fc1, op: dense, units: 2}
  - name: dyn
    op: equation
    variables: [x1, x2]
    controls: {a: real, b: {set: box, lo: -1, hi: 1}}
    constants: {dt: 0.1}
    dynamics: {x1: x1 + dt*x2, x2: x2 + dt*(a*tanh(x1) + b)}
  - {name: fc2, op: dense, units: 3}
cost: cross_entropy
"""


def dsl_model() -> Model:
    m = Model("eqnet", input=(3,))
    m.dense(2, name="fc1")
    m.equation(["x1", "x2"], DYN, controls={"a": "real", "b": Box(-1, 1)},
               constants={"dt": 0.1}, name="dyn")
    m.dense(3, name="fc2")
    m.terminal("cross_entropy")
    return m


def rich_model() -> Model:
    """Outputs of another size, a control-only and a constant output, every kind of function."""
    m = Model("eqrich", input=(4,))
    m.dense(3)
    m.equation(["u", "v", "w"], {"y1": "sigmoid(u)*c + relu(v - k) - Abs(w)**1.5",
                                 "y2": "exp(-w**2) + sin(u)*cos(v) + Max(u, v) + c*k",
                                 "y3": "c**2 + k", "y4": "2.5"},
               controls={"c": "real", "k": Ternary()}, outputs=["y1", "y2", "y3", "y4"])
    m.tanh()
    m.dense(2)
    m.terminal("mse").l2(0.01)
    return m


def test_yaml_equals_dsl_and_round_trips(tmp_path):
    spec = ocdl.loads_spec(YAML)
    assert spec == dsl_model().spec()
    text = spec.to_yaml()
    assert "a: real" in text
    again = ocdl.loads_spec(text)
    assert again == spec and again.to_yaml() == text
    rich = rich_model().spec()
    assert ocdl.loads_spec(rich.to_yaml()) == rich
    p = tmp_path / "m.yaml"
    p.write_text(YAML)
    assert ocdl.load_spec(p) == spec


def test_json_schema_accepts_the_stage():
    jsonschema = pytest.importorskip("jsonschema")
    from ocdl.modelspec.schema import json_schema
    from ocdl.modelspec.yaml_io import parse_yaml
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for text in (YAML, rich_model().spec().to_yaml()):
        data, _ = parse_yaml(text)
        jsonschema.validate(data, schema)
    bad, _ = parse_yaml(YAML.replace("variables: [x1, x2]", "variables: x1"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_compiles_with_scalar_controls_and_forward_matches_by_hand():
    system = ocdl.loads_spec(YAML).compile(dtype=D, seed=2)
    assert [(c.name, c.shape) for c in system.controls if c.stage == "dyn"] == [
        ("dyn.a", (1,)), ("dyn.b", (1,))]
    assert system.control["dyn.b"].cset == Box(-1.0, 1.0)
    assert system.stages[1].out_shape == (2,) and system.stages[1].flops > 0
    with torch.no_grad():
        system.theta["dyn.a"].fill_(0.7)
        system.theta["dyn.b"].fill_(-0.2)
    x = torch.randn(6, 3, dtype=D)
    st = system.forward(x)
    h = st.x[1]
    want = torch.stack([h[:, 0] + 0.1 * h[:, 1],
                        h[:, 1] + 0.1 * (0.7 * torch.tanh(h[:, 0]) - 0.2)], 1)
    assert torch.allclose(st.x[2], want, atol=1e-14)
    from ocdl.explain import render_table, stage_rows, to_dot
    row = stage_rows(system)[1]
    assert (row.op, row.shape, row.params) == ("equation", (2,), 2)
    assert row.control == "a: real (zeros); b: box [-1, 1]"
    render_table(system)
    assert "dyn" in to_dot(system)


def test_explain_cli(tmp_path):
    from click.testing import CliRunner

    from ocdl.cli import cli
    p = tmp_path / "m.yaml"
    p.write_text(YAML)
    r = CliRunner().invoke(cli, ["explain", str(p)])
    assert r.exit_code == 0, r.output
    assert "equation" in r.output


@pytest.mark.parametrize("build", [dsl_model, rich_model], ids=["eqnet", "rich"])
@pytest.mark.parametrize("batch", [1, 6])
def test_costates_match_finite_differences_and_hamiltonians(build, batch):
    system = build().compile(dtype=D, seed=batch)
    with torch.no_grad():  # move the controls away from 0 so every term matters
        for c in system.controls:
            if c.stage.startswith("equation") or c.stage == "dyn":
                system.theta[c.name].copy_(c.cset.project(torch.full(c.shape, 0.6, dtype=D)))
    x = torch.randn(batch, *system.input_shape, dtype=D)
    y = (torch.randint(3, (batch,)) if build is dsl_model
         else torch.randn(batch, 2, dtype=D))
    st, c = fd_check(system, x, y)
    check_costate_recursion(system, st, c, y)


@pytest.mark.parametrize("solver", ["adam", "emsa"])
def test_a_solver_runs_on_it(solver):
    system = dsl_model().compile(dtype=D, seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=g, dtype=D), torch.randint(3, (16,), generator=g)
    J0 = float(system.objective(system.forward(x), y)[0].detach())
    s = make_solver(solver)
    state = s.init(system)
    for _ in range(5):
        state, _m = s.step(system, state, x, y)
    assert system.check_sets() == []
    J = float(system.objective(system.forward(x), y)[0].detach())
    assert np.isfinite(J) and J < J0 + 1e-9, (J0, J)


def _spec_with(stage: dict, input_=(2,)) -> dict:
    base = {"name": "dyn", "op": "equation", "variables": ["x1", "x2"],
            "controls": {"a": "real"}, "dynamics": {"x1": "x1", "x2": "x2 + a"}}
    base.update(stage)
    return {"ocdl": 1, "name": "e", "input": list(input_), "stages": [base], "cost": "mse"}


@pytest.mark.parametrize("stage,match", [
    ({"dynamics": {"x1": "x1 + q", "x2": "x2"}},
     r"stages\[0\]\.dynamics\.x1: unknown symbol 'q'"),
    ({"dynamics": {"x1": "x1 + aa", "x2": "x2"}}, r"unknown symbol 'aa'.*did you mean 'a'"),
    ({"dynamics": {"x1": "__import__('os').system('x')", "x2": "x2"}},
     r"stages\[0\]\.dynamics\.x1: names starting with '_'"),
    ({"dynamics": {"x1": "x1.real", "x2": "x2"}}, r"attribute access"),
    ({"dynamics": {"x1": "lambda: 1", "x2": "x2"}}, r"keyword 'lambda'"),
    ({"dynamics": {"x1": "x1[0]", "x2": "x2"}}, r"'\[' is not allowed"),
    ({"dynamics": {"x1": "x1"}}, r"stages\[0\]\.dynamics: missing the expression of output 'x2'"),
    ({"dynamics": {"x1": "x1", "x2": "x2", "x3": "x1"}},
     r"dynamics\.x3: 'x3' is not one of the variables.*'outputs'"),
    ({"controls": {"a": {"set": "bx", "lo": 0, "hi": 1}}},
     r"stages\[0\]\.controls\.a\.set: unknown control set 'bx'.*did you mean 'box'"),
    ({"controls": {"a": {"set": "box", "lo": 1, "hi": 0}}}, r"stages\[0\]\.controls\.a"),
    ({"controls": {"a": 3}}, r"stages\[0\]\.controls\.a: expected a control set"),
    ({"controls": {"x1": "real"}}, r"controls\.x1: the name 'x1' is both a variable and control"),
    ({"constants": {"t": 1.0}}, r"constants\.t: 't' is reserved"),
    ({"constants": {"dt": "big"}}, r"constants\.dt: expected a finite number"),
    ({"variables": ["x1", "x1"]}, r"variables\[1\]: the name 'x1' is listed twice"),
    ({"variables": []}, r"variables: expected a non-empty list of names"),
    ({"variables": ["1x", "x2"]}, r"variables\[0\]: expected a name"),
    ({"dynamics": "x1"}, r"dynamics: expected a mapping of names to expressions"),
    ({"dynamics": {"x1": True, "x2": "x2"}}, r"dynamics\.x1: expected an expression"),
])
def test_spec_errors_name_the_field_and_symbol(stage, match):
    with pytest.raises(ocdl.SpecError, match=match):
        spec_from_dict(_spec_with(stage))


def test_errors_carry_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(YAML.replace("dt*(a*tanh(x1) + b)", "dt*(a*tanh(x1) + bogus)"))
    with pytest.raises(ocdl.SpecError) as e:
        ocdl.load_spec(p)
    msg = str(e.value)
    assert "bad.yaml" in msg and "unknown symbol 'bogus'" in msg and "stages[1].dynamics.x2" in msg
    assert e.value.line == 11


def test_shape_mismatch_names_variables_and_input():
    with pytest.raises(ocdl.ShapeError,
                       match=r"2 variables \[x1, x2\] but its input has shape \[3\]"):
        spec_from_dict(_spec_with({}, input_=(3,))).compile()
    m = Model("img", input=(1, 2, 1))
    m.equation(["x1", "x2"], {"x1": "x1", "x2": "x2"})
    with pytest.raises(ocdl.ShapeError, match=r"input has shape \[1, 2, 1\]"):
        m.compile()


def test_stage_control_override_and_no_controls():
    d = _spec_with({"controls": {"a": "real", "b": "real"},
                    "dynamics": {"x1": "x1*b", "x2": "x2 + a"}, "control": {"b": "binary"}})
    system = spec_from_dict(d).compile(dtype=D)
    assert system.control["dyn.b"].cset.discrete and not system.control["dyn.a"].cset.discrete
    fixed = spec_from_dict(_spec_with({"controls": None, "dynamics": {"x1": "x2", "x2": "-x1"}}))
    system = fixed.compile(dtype=D)
    assert system.controls == [] or all(c.stage != "dyn" for c in system.controls)
    x = torch.randn(3, 2, dtype=D)
    assert torch.equal(system.forward(x).x[1], torch.stack([x[:, 1], -x[:, 0]], 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    system = dsl_model().compile(device="cuda", dtype=D)
    x, y = torch.randn(4, 3, dtype=D, device="cuda"), torch.randint(3, (4,), device="cuda")
    c = system.costates(system.forward(x), y)
    assert c.M["dyn.a"].device.type == "cuda"


# ---------------------------------------------------------------------- casadi
def test_casadi_export_agrees_with_ocdl():
    casadi = pytest.importorskip("casadi")
    from ocdl.check.casadi_export import build_problem, gradients
    from ocdl.check.runner import plan
    m = rich_model()
    m.data("inline", x=[[0.1, -0.5, 0.3, 0.0], [0.7, 0.2, -0.1, 0.4], [-0.3, 0.9, 0.5, -0.6]],
           y=[[0.0, 1.0], [1.0, 0.5], [0.2, 0.3]])
    system = m.compile(dtype=D, seed=1)
    p = plan(system)
    x0, y = p.x0, p.y
    problem = build_problem(system, x0, y)
    Jfun = casadi.Function("J", [problem.U, problem.delta], [problem.J])
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        if k:
            with torch.no_grad():
                for c in system.controls:
                    system.theta[c.name].copy_(c.cset.project(
                        torch.randn(c.shape, generator=g, dtype=D)))
        states = system.forward(x0)
        co = system.costates(states, y)
        U = problem.vector(system.theta)
        J = float(system.objective(states, y, include_l1=True)[0].detach())
        assert J == pytest.approx(float(Jfun(U, np.zeros(problem.delta.shape[0]))), abs=1e-12)
        gU, ps = gradients(problem, U)
        assert np.abs(problem.vector(co.M) + gU).max() < 1e-9
        for t in range(system.T):
            assert np.abs(co.p[t + 1].detach().numpy() - ps[t]).max() < 1e-9


def test_ocdl_check_passes_on_a_network_with_an_equation_stage():
    pytest.importorskip("casadi")
    from ocdl.check import check
    m = Model("eqcheck", input=(1,))
    m.dense(2, name="fc1")
    m.equation(["h1", "h2"], {"z": "a*tanh(h1) + b*h2"}, controls={"a": "real", "b": "real"},
               outputs=["z"], name="eq")
    m.terminal("mse").l2(1e-3)
    m.data("inline", x=[[-1.0], [-0.5], [0.0], [0.5], [1.0]],
           y=[[-0.8], [-0.45], [0.0], [0.45], [0.8]], batch_size=5, preprocess="none")
    r = check(m.spec())
    assert r.ok and r.casadi_status == "Solve_Succeeded", (r.gap, r.ocdl.J, r.casadi.J)
    assert r.grad_diff < 1e-9 and r.costate_diff < 1e-9
