"""The spec format reads the same in any YAML tool: every shipped model, loaded with plain
PyYAML (YAML 1.1, where a key ``on`` is ``true``), validates against ``ocdl schema`` with
jsonschema and builds the same spec as ``ocdl.load_spec``. The running-cost key is ``apply_to``;
the old ``on`` still loads, with a :class:`SpecDeprecationWarning` naming the file, the line and
the new key."""
import json
import warnings

import pytest
import yaml
from click.testing import CliRunner

import ocdl
from ocdl.cli import cli
from ocdl.errors import SpecDeprecationWarning, SpecError
from ocdl.models import model_names, model_path
from ocdl.modelspec.validate import spec_from_dict
from tests.conftest import ROOT

MODELS = [model_path(n) for n in model_names()]
jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schema():
    r = CliRunner().invoke(cli, ["schema"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def _keys(value, path=""):
    """Every mapping key in ``value`` with its path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k
            yield from _keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, f"{path}[{i}]")


@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_model_reads_the_same_with_plain_pyyaml_and_jsonschema(path, schema):
    data = yaml.safe_load(path.read_text())
    bad = [p for p, k in _keys(data) if not isinstance(k, str)]
    assert not bad, f"keys that YAML 1.1 does not read as text: {bad}"
    jsonschema.validate(data, schema)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpecDeprecationWarning)
        assert spec_from_dict(data) == ocdl.load_spec(path)


OLD = """\
ocdl: 1
name: old
input: [4]
stages:
  - {name: fc1, op: dense, units: 3}
cost:
  terminal: cross_entropy
  running:
    - {type: l1, weight: 1.0e-7, on: [fc1]}
"""


def test_the_old_key_on_loads_with_a_deprecation_warning(tmp_path, schema):
    p = tmp_path / "old.yaml"
    p.write_text(OLD)
    with pytest.warns(SpecDeprecationWarning, match=rf"^{p}:9: cost.running\[0\]: the key 'on' "
                      r"is deprecated .*write 'apply_to'"):
        old = ocdl.load_spec(p)
    new = ocdl.loads_spec(OLD.replace("on: [fc1]", "apply_to: [fc1]"))
    assert old == new and old.cost.running[0].apply_to == ("fc1",)
    assert "apply_to" in old.to_yaml() and " on:" not in old.to_yaml()
    # plain PyYAML reads the key as True: still understood, still warned about
    data = yaml.safe_load(OLD)
    assert True in data["cost"]["running"][0]
    with pytest.warns(SpecDeprecationWarning, match="'on' is deprecated"):
        assert spec_from_dict(data) == new
    # and a misspelt target is found on the old key's line
    p.write_text(OLD.replace("on: [fc1]", "on: [fc9]"))
    with pytest.warns(SpecDeprecationWarning), pytest.raises(
            SpecError, match=rf"^{p}:9: cost.running\[0\].apply_to\[0\]: 'fc9' is neither"):
        ocdl.load_spec(p).compile()


def test_on_and_apply_to_together_is_an_error():
    text = OLD.replace("on: [fc1]", "on: [fc1], apply_to: [fc1]")
    with pytest.raises(SpecError, match=r"m.yaml:9: cost.running\[0\].on: give the targets "
                                        "once, under 'apply_to'"):
        ocdl.loads_spec(text, "m.yaml")


def test_the_dsl_writes_apply_to():
    m = ocdl.Model("m", input=(4,))
    m.dense(3, name="fc1")
    m.l1(1e-7, ["fc1"]).l2(1e-4, on=["fc1"])
    running = m.to_dict()["cost"]["running"]
    assert [r["apply_to"] for r in running] == [["fc1"], ["fc1"]]
    assert all("on" not in r for r in running)


INLINE_DATA = """\
data:
  name: inline
  x: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
  y: [0, 1, 2, 0]
  batch_size: 4
  preprocess: none
"""


@pytest.mark.parametrize("command", ["explain", "solve"])
def test_every_command_prints_the_deprecation_as_one_line(tmp_path, command):
    p = tmp_path / "old.yaml"
    p.write_text(OLD + INLINE_DATA)
    args = [command, str(p)] + (["--epochs", "1", "--out", str(tmp_path / "run")]
                                if command == "solve" else [])
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "DeprecationWarning" not in r.stderr  # not Python's two-line format
    lines = [ln for ln in r.stderr.splitlines() if "warn" in ln.lower()]
    assert lines == [f"warning: {p}:9: cost.running[0]: the key 'on' is deprecated (YAML 1.1 "
                     "tools read it as true); write 'apply_to' instead, e.g. {type: l1, weight: "
                     "1.0e-7, apply_to: [fc1]}"], r.stderr


RECORDS = sorted([*ROOT.glob("tests/fixtures/configs/*.yaml"),
                  *ROOT.glob("tests/fixtures/runs/*/config.yaml")])


def test_run_records_written_with_on_still_load():
    """Run folders record the spec they ran (``model:`` in config.yaml), many with ``'on':``."""
    from ocdl.modelspec.yaml_io import parse_yaml
    for path in RECORDS:
        data, lines = parse_yaml(path.read_text(), str(path))
        model = {k[len("model."):]: v for k, v in lines.items() if k.startswith("model.")}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = spec_from_dict(data["model"], lines=model, file=str(path))
        old = any(" 'on':" in ln or " on:" in ln for ln in path.read_text().splitlines())
        assert any(issubclass(w.category, SpecDeprecationWarning) for w in caught) == old
        assert spec.to_dict()["name"] == data["model"]["name"]
    assert len(RECORDS) > 10
