"""The spec key ``initial_controls``: a file of start values, checked for names, shapes and sets,
with errors at the spec's file and line."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import ocdl
from ocdl.errors import SpecError

SPEC = """\
ocdl: 1
name: tiny
input: [4]
stages:
  - {name: fc1, op: dense, units: 3, bias: false, control: ternary}
  - {name: bn1, op: batchnorm}
  - {name: out, op: dense, units: 2}
cost: cross_entropy
initial_controls: %s
"""
LINE = 9  # the line of the key above


def _values(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"fc1.weight": torch.randint(-1, 2, (3, 4), generator=g).double(),
            "bn1.weight": torch.rand(3, generator=g, dtype=torch.float64) + 0.5,
            "bn1.bias": torch.randn(3, generator=g, dtype=torch.float64),
            "bn1.running_mean": torch.randn(3, generator=g, dtype=torch.float64),
            "bn1.running_var": torch.rand(3, generator=g, dtype=torch.float64) + 0.5,
            "out.weight": torch.randn(2, 3, generator=g, dtype=torch.float64),
            "out.bias": torch.randn(2, generator=g, dtype=torch.float64)}


def _write(tmp_path: Path, values, name="w.pt", key=None) -> Path:
    torch.save(values, tmp_path / name)
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC % (key or name))
    return spec


def test_the_system_starts_from_the_file(tmp_path, monkeypatch):
    vals = _values()
    path = _write(tmp_path, vals)
    monkeypatch.chdir(Path(os.sep))  # a relative path is read from the spec's folder
    system = ocdl.compile(str(path), dtype=torch.float64)
    for k, v in vals.items():
        stage, _, what = k.partition(".")
        got = system.theta[k] if k in system.theta else next(
            s for s in system.all_stages() if s.name == stage).buffers[what]
        assert torch.equal(got.detach(), v), k
    # the seed no longer matters
    other = ocdl.compile(str(path), dtype=torch.float64, seed=5)
    assert all(torch.equal(system.theta[k], other.theta[k]) for k in system.theta)


def test_statistics_may_be_left_out(tmp_path):
    vals = {k: v for k, v in _values().items() if "running" not in k}
    system = ocdl.compile(str(_write(tmp_path, vals)))
    bn = next(s for s in system.all_stages() if s.name == "bn1")
    assert torch.equal(bn.buffers["running_var"], torch.ones(3))


def test_round_trip_keeps_the_key(tmp_path):
    spec = ocdl.load_spec(_write(tmp_path, _values()))
    assert spec.to_dict()["initial_controls"] == "w.pt"
    again = ocdl.loads_spec(spec.to_yaml(), file=str(tmp_path / "copy.yaml"))
    assert again == spec and again.initial_controls.file == tmp_path / "w.pt"


def _error(tmp_path, values, **kw) -> str:
    path = _write(tmp_path, values, **kw)
    with pytest.raises(SpecError) as e:
        ocdl.compile(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}:{LINE}: initial_controls: "), msg
    return msg


def test_shape_mismatch(tmp_path):
    vals = _values()
    vals["out.weight"] = torch.zeros(3, 3, dtype=torch.float64)
    assert "'out.weight' in w.pt has shape [3, 3], the model's is [2, 3]" in _error(tmp_path,
                                                                                   vals)


def test_missing_and_unknown_names(tmp_path):
    vals = _values()
    del vals["out.bias"]
    assert "w.pt lacks the control out.bias" in _error(tmp_path, vals)
    vals = {**_values(), "fc2.weight": torch.zeros(1)}
    assert "'fc2.weight', which is neither a control nor a statistic" in _error(tmp_path, vals)
    vals = _values()
    vals["out.wieght"] = vals.pop("out.weight")
    assert "did you mean 'out.weight'" in _error(tmp_path, vals)


def test_values_outside_the_set_or_not_finite(tmp_path):
    vals = _values()
    vals["fc1.weight"] = vals["fc1.weight"] * 0.5
    assert "outside its set ternary {-1,0,+1}" in _error(tmp_path, vals)
    vals = _values()
    vals["out.bias"][0] = float("nan")
    assert "NaN or infinite" in _error(tmp_path, vals)
    vals = _values()
    vals["out.bias"] = torch.tensor([True, False])
    assert "not numbers" in _error(tmp_path, vals)


class Payload:
    """An object only a full unpickle could build."""


def test_files_that_are_not_plain_tensors(tmp_path):
    assert "file not found" in _error(tmp_path, _values(), key="gone.pt")
    assert "never does that" in _error(tmp_path, {"x": Payload()})
    assert "not a mapping of names to tensors" in _error(tmp_path, [torch.zeros(1)])
    (tmp_path / "bad.pt").write_bytes(b"not a zip file")
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC % "bad.pt")
    with pytest.raises(SpecError, match="bad.pt is not a readable file of initial controls"):
        ocdl.compile(str(spec))


def test_the_key_is_validated_when_read(tmp_path):
    with pytest.raises(SpecError, match=r":9: initial_controls: 'w.npz' is not a .pt"):
        ocdl.loads_spec(SPEC % "w.npz", file=str(tmp_path / "net.yaml"))
    with pytest.raises(SpecError, match="expected the path of a file"):
        ocdl.loads_spec(SPEC % "[1, 2]")
    eq = "ocdl: 1\nname: e\nsystem: {}\ninitial_controls: w.pt\n"
    with pytest.raises(SpecError, match="'initial_controls' belongs to network specs"):
        ocdl.loads_spec(eq)


def test_the_schema_states_the_key():
    jsonschema = pytest.importorskip("jsonschema")
    from ocdl.modelspec.schema import json_schema
    import yaml
    schema = json_schema()
    jsonschema.validate(yaml.safe_load(SPEC % "w.safetensors"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(SPEC % "w.npz"), schema)
