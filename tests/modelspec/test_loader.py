"""Every loader error path names file, line and field, and says how to fix it."""
import textwrap

import pytest

import ocdl
from ocdl.errors import ShapeError, SpecError

GOOD = """\
ocdl: 1
name: tiny
input: [4]
stages:
  - {name: fc1, op: dense, units: 8, control: ternary}
  - {name: bn1, op: batchnorm}
  - relu
  - {name: out, op: dense, units: 3}
cost:
  terminal: cross_entropy
  running:
    - {type: l1, weight: 1e-7, apply_to: [fc1]}
data: {name: mnist-subset, batch_size: 50}
"""


def write(tmp_path, text):
    p = tmp_path / "m.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_spec_loads(tmp_path):
    spec = ocdl.load_spec(write(tmp_path, GOOD))
    assert [s.name for s in spec.stages] == ["fc1", "bn1", "relu1", "out"]
    assert spec.cost.running[0].weight == 1e-7 and spec.cost.running[0].apply_to == ("fc1",)
    assert spec.data.batch_size == 50
    system = spec.compile()
    assert system.control["fc1.weight"].l1 == 1e-7


def replace(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


CASES = [
    # (text, expected line, expected message fragment)
    (replace("units: 8", "units: abc"), 5, "stages[0].units: expected a positive integer, got 'abc'"),
    (replace("op: dense, units: 8", "op: dense, unit: 8"), 5, "stages[0].unit: unknown key 'unit'"
     " in a dense stage (did you mean 'units'?)"),
    (replace("op: batchnorm", "op: batchnrom"), 6, "stages[1].op: unknown op 'batchnrom' (did you"
     " mean 'batchnorm'?)"),
    (replace("control: ternary", "control: ternery"), 5, "stages[0].control.set: unknown control"
     " set 'ternery' (did you mean 'ternary'?)"),
    (replace("terminal: cross_entropy", "terminal: crossentropy"), 10, "cost.terminal: unknown "
     "terminal cost 'crossentropy' (did you mean 'cross_entropy'?)"),
    (replace("ocdl: 1", "ocdl: 7"), 1, "ocdl: unsupported spec version 7"),
    (replace("input: [4]", "input: [4, x]"), 3, "input: expected the input sample shape"),
    (replace("{type: l1, weight: 1e-7, apply_to: [fc1]}", "{type: l1, weight: -1}"), 12,
     "cost.running[0].weight: expected a non-negative weight"),
    (replace("  - relu\n", "  - {op: relu, inputs: nothere}\n"), 7,
     "stages[2].inputs[0]: unknown stage 'nothere'"),
    (replace("  - relu\n", "  - {op: relu, inputs: out}\n"), 7, "stages[2].inputs[0]: stage "
     "'out' is defined at or after this one"),
    (replace("{name: bn1, op: batchnorm}", "{name: fc1, op: batchnorm}"), 6,
     "stages[1].name: duplicate stage name 'fc1'"),
    (replace("name: mnist-subset", "name: minst"), 13, "data.name: unknown dataset 'minst' (did you"
     " mean 'mnist'?)"),
    (replace("batch_size: 50", "batch_size: 0"), 13, "data.batch_size: expected a positive integer"),
    (replace("apply_to: [fc1]", "apply_to: [fc9]"), 12,
     "cost.running[0].apply_to[0]: 'fc9' is neither a stage"),
    (replace("control: ternary", "control: {set: ternary, bais: real}"), 5,
     "unknown key 'bais'"),
    (replace("control: ternary", "control: {weight: ternary, bais: real}"), 5,
     "stages[0].control.bais: a dense stage has no control 'bais' (did you mean 'bias'?)"),
    (replace("  - relu\n", "  - {op: relu, control: binary}\n"), 7,
     "stages[2].control: a relu stage has no controls"),
    (replace("  - relu\n", "  - {op: add, inputs: [bn1]}\n"), 7, "add takes at least 2 input(s)"),
    (replace("cost:\n  terminal: cross_entropy", "cost:\n  terminal: cross_entropy\n  termnial: x"),
     11, "cost.termnial: unknown key 'termnial' in cost (did you mean 'terminal'?)"),
    (replace("stages:", "stage:"), 4, "unknown key 'stage' in the model spec (did you mean "
     "'stages'?)"),
]


@pytest.mark.parametrize("text, line, fragment", CASES, ids=[c[2][:40] for c in CASES])
def test_spec_errors(tmp_path, text, line, fragment):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        ocdl.load_spec(p).compile()
    msg = str(e.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg, msg
    assert "\n" not in msg


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, "ocdl: 1\nname: x\nstages:\n  - {op: dense, units: 3\ncost: mse\n")
    with pytest.raises(SpecError, match=rf"^{p}:\d+: YAML syntax error"):
        ocdl.load_spec(p)


def test_duplicate_key_and_empty_file(tmp_path):
    p = write(tmp_path, "ocdl: 1\nname: a\nname: b\n")
    with pytest.raises(SpecError, match=rf"^{p}:3: name: duplicate key 'name'"):
        ocdl.load_spec(p)
    p.write_text("")
    with pytest.raises(SpecError, match="the file is empty"):
        ocdl.load_spec(p)
    with pytest.raises(SpecError, match="model file not found"):
        ocdl.load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("stages, fragment", [
    ("[{op: conv2d, channels: 4}]", "conv2d needs a (channels, height, width) input, got shape"
     " [4]"),
    ("[{op: dense, units: 3, name: a}, {op: dense, units: 5, name: b},"
     " {op: add, inputs: [a, b]}]", "add needs inputs of one shape, got [3] and [5]"),
    ("[{op: dense, units: 3, name: a}, {op: dense, units: 3, name: b, inputs: input},"
     " {op: dense, units: 2}]", "the output of stage 'a' is never used"),
    ("[{op: residual, stages: [{op: dense, units: 7}]}]", "the inner stages map shape [4] to [7]"),
    ("[{op: dense, units: 3, inputs: [input]}, {op: relu}, {op: residual, stages: "
     "[{op: relu, inputs: x}]}]", "take no 'inputs'"),
])
def test_shape_and_graph_errors(tmp_path, stages, fragment):
    p = write(tmp_path, f"ocdl: 1\nname: x\ninput: [4]\nstages: {stages}\ncost: mse\n")
    with pytest.raises(SpecError) as e:
        ocdl.load_spec(p).compile()
    assert fragment in str(e.value) and str(e.value).startswith(f"{p}:4: stages"), str(e.value)


def test_shape_error_type(tmp_path):
    p = write(tmp_path, "ocdl: 1\nname: x\ninput: [1, 8, 8]\nstages:\n  - {op: dense, units: 3}\n"
                        "cost: cross_entropy\n")
    with pytest.raises(ShapeError, match=r":5: stages\[0\]: dense needs a vector input, got shape"
                                         r" \[1, 8, 8\]; add a 'flatten' stage"):
        ocdl.load_spec(p).compile()


def test_terminal_needs_vector_output(tmp_path):
    p = write(tmp_path, "ocdl: 1\nname: x\ninput: [1, 8, 8]\nstages: [{op: conv2d, channels: 2}]"
                        "\ncost: cross_entropy\n")
    with pytest.raises(ShapeError, match="cross_entropy needs a vector of class scores"):
        ocdl.load_spec(p).compile()


def test_loading_a_spec_does_not_import_the_data_stack():
    """Reading and validating a spec needs the data block's options, not the dataset readers."""
    import subprocess
    import sys
    code = ("import sys; from ocdl.modelspec import loads_spec; "
            "loads_spec('ocdl: 1\\nname: m\\ninput: [4]\\nstages: [{op: dense, units: 2}]\\n"
            "cost: mse\\ndata: {name: mnist-subset}\\n'); "
            "print(sorted(m for m in sys.modules if m.startswith(('PIL', 'ocdl.data.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['ocdl.data.augment', 'ocdl.data.options']"
