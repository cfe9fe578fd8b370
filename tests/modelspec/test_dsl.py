"""The Python DSL builds the same spec as YAML; DSL → spec → YAML → spec is the identity."""
import pytest

import ocdl
from ocdl import Levels, Model, Ternary
from ocdl.models import model_names, model_path
from ocdl.modelspec.schema import json_schema
from ocdl.modelspec.yaml_io import parse_yaml


def paper_mnist_dsl() -> Model:
    m = Model("mnist-fc-ternary", input=(784,))
    for i in range(1, 4):
        m.dense(2048, bias=False, control=Ternary(), name=f"fc{i}")
        m.batchnorm(eps=1e-4, name=f"bn{i}")
        m.relu(name=f"relu{i}")
    m.dense(10, bias=False, control=Ternary(), name="fc4")
    m.batchnorm(eps=1e-4, name="bn4")
    m.terminal("squared_hinge").l1(1e-7, on=["fc1", "fc2", "fc3", "fc4"])
    m.data("mnist", batch_size=100)
    return m


def test_dsl_equals_yaml_file():
    assert paper_mnist_dsl().spec() == ocdl.load_spec(model_path("mnist-fc-ternary"))


def rich_model() -> Model:
    m = Model("rich", input=(3, 8, 8), description="every feature")
    m.conv2d(4, 3, padding=1, control={"weight": Levels((-1, -0.5, 0, 0.5, 1)), "bias": "real"})
    a = m.relu()
    with m.residual(h=0.25):
        m.conv2d(4, [3, 3], padding=[1, 1], control={"set": "box", "lo": -1, "hi": 1})
        m.batchnorm(momentum=0.05)
        m.tanh()
    b = m.add(a, "residual1")
    m.concat(a, b, axis=0)
    m.maxpool(2, stride=2)
    m.dropout(0.1)
    m.flatten()
    m.dense(10, control="binary")
    m.terminal("cross_entropy").l2(1e-4).state_l2(1e-3, on=["dense1"])
    m.data("cifar-10", augment={"crop": 4, "flip": True}, split={"train": 45000, "valid": 5000})
    return m


@pytest.mark.parametrize("build", [paper_mnist_dsl, rich_model])
def test_round_trip(build, tmp_path):
    spec = build().spec()
    text = spec.to_yaml()
    again = ocdl.loads_spec(text)
    assert again == spec
    assert again.to_yaml() == text
    p = tmp_path / "x.yaml"
    p.write_text(text)
    assert ocdl.load_spec(p) == spec
    spec.compile()  # and it compiles


def test_every_model_file_validates_against_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    files = [model_path(n) for n in model_names()]
    assert files
    for f in files:
        data, _ = parse_yaml(f.read_text(), str(f))
        if "system" in data:  # equation-defined systems have their own schema section
            continue
        jsonschema.validate(data, schema)
        ocdl.load_spec(f)
    bad, _ = parse_yaml("ocdl: 1\nname: x\ninput: [3]\nstages: [{op: dense, unit: 3}]\ncost: mse")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_dsl_auto_names_and_errors():
    m = Model("x", input=(4,))
    assert m.dense(3) == "dense1" and m.relu() == "relu1" and m.dense(2) == "dense2"
    m.stage("dense", units=0)
    with pytest.raises(ocdl.SpecError, match=r"stages\[3\].units: expected a positive integer"):
        m.spec()
