"""``ocdl explain`` and ``ocdl schema`` as a user runs them."""
import json

from click.testing import CliRunner

from ocdl.cli import cli
from ocdl.models import model_path


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_explain_paper_mnist_network(tmp_path):
    r = run("explain", str(model_path("mnist-fc-ternary")), "--graph",
            str(tmp_path / "g.png"))
    assert r.exit_code == 0, r.output
    out = r.output
    for fragment in ["T = 11", "10,027,028", "fc1", "ternary {-1,0,+1}", "1,605,632",
                     "4,194,304", "20,480", "[2048]", "squared_hinge", "l1 1e-07"]:
        assert fragment in out, fragment
    # FLOPs of fc2: 2·2048·2048 multiply-adds per sample
    assert "8,388,608" in out
    png = (tmp_path / "g.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_dot_graph_of_a_merge(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("ocdl: 1\nname: m\ninput: [4]\nstages:\n  - {name: a, op: dense, units: 4}\n"
                    "  - {name: b, op: tanh}\n  - {name: c, op: add, inputs: [a, b]}\n"
                    "cost: mse\n")
    r = run("explain", str(spec), "--graph", str(tmp_path / "g.dot"))
    assert r.exit_code == 0, r.output
    dot = (tmp_path / "g.dot").read_text()
    assert '"a" -> "c"' in dot and '"b" -> "c"' in dot and '"input" -> "a"' in dot


def test_explain_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ocdl: 1\nname: m\ninput: [4]\nstages:\n  - {op: dens, units: 4}\ncost: mse\n")
    r = CliRunner().invoke(cli, ["explain", str(bad)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert f"{bad}:5: stages[0].op: unknown op 'dens' (did you mean 'dense'?)" in r.output
    r = CliRunner().invoke(cli, ["explain", str(model_path("mnist-fc-ternary")),
                                 "--graph", str(tmp_path / "g.jpg")])
    assert r.exit_code == 2 and "use a .png, .svg, .pdf or .dot" in r.output


def test_schema_is_json():
    r = run("schema")
    assert r.exit_code == 0
    schema = json.loads(r.output)
    assert "dense" in json.dumps(schema["$defs"]["stage"])
