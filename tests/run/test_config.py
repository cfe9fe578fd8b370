"""--set parsing and routing, run options, devices."""
import dataclasses

import pytest

from ocdl.errors import OcdlError
from ocdl.errors import ConfigError
from ocdl.models import model_path
from ocdl.run.device import resolve_device
from ocdl.run.options import RunOptions, run_options
from ocdl.run.overrides import apply_data_overrides, parse_sets, parse_value, split_overrides
from ocdl.modelspec import loads_spec

from run_fakes import TINY_SPEC


def test_values_are_yaml_scalars():
    assert parse_value("0.3") == 0.3
    assert parse_value("1e-7") == 1e-7 and isinstance(parse_value("1e-7"), float)
    assert parse_value("50") == 50 and isinstance(parse_value("50"), int)
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("adam") == "adam"
    assert parse_sets(["rho=0.3", "data.limit=2000", "x=a=b"]) == {
        "rho": 0.3, "data.limit": 2000, "x": "a=b"}


@pytest.mark.parametrize("item", ["rho", "=3", "data.=1", ".x=1"])
def test_malformed_sets(item):
    with pytest.raises(ConfigError):
        parse_sets([item])


def test_routing():
    ov = split_overrides({"rho": 0.3, "solver.lam": 1e-7, "data.batch_size": 50,
                          "run.log_every": 7})
    assert ov.solver == {"rho": 0.3, "lam": 1e-7}
    assert ov.data == {"batch_size": 50}
    assert ov.run == {"log_every": 7}
    with pytest.raises(ConfigError, match="did you mean 'run.log_every'|did you mean 'log_every'"):
        split_overrides({"run.log_evry": 3})
    # a dotted key without data. or run. is the solver's (a block's key: sparsity.target)
    assert split_overrides({"sparsity.target": 0.02}).solver == {"sparsity.target": 0.02}


def test_data_overrides_are_validated():
    spec = loads_spec(TINY_SPEC)
    new = apply_data_overrides(spec, {"batch_size": 50, "limit": 2000, "split.train": 100})
    assert new.data.batch_size == 50 and new.data.limit == 2000
    assert new.data.split == {"train": 100}
    assert spec.data.batch_size == 20  # the original is unchanged
    with pytest.raises(OcdlError, match="unknown key 'batch'.*did you mean 'batch_size'"):
        apply_data_overrides(spec, {"batch": 5})
    with pytest.raises(OcdlError, match="positive integer"):
        apply_data_overrides(spec, {"batch_size": 0})
    nodata = dataclasses.replace(spec, data=None)
    with pytest.raises(ConfigError, match="no data: block"):
        apply_data_overrides(nodata, {"limit": 5})


def test_run_options():
    o = run_options(epochs=3, seed=2, device="cpu", settings={"log_every": 5})
    assert o == RunOptions(epochs=3, seed=2, device="cpu", log_every=5)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        run_options(epochs=0)
    with pytest.raises(ConfigError, match="eval_every must be a positive integer"):
        run_options(settings={"eval_every": 0})
    with pytest.raises(ConfigError, match="log_every"):
        run_options(settings={"log_every": "often"})
    with pytest.raises(ConfigError, match="unknown device"):
        run_options(device="tpu")


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_tf32_option_is_validated_and_defaults_on():
    from ocdl.errors import ConfigError
    from ocdl.run.options import RunOptions, run_options
    assert RunOptions().tf32 is True
    assert run_options(settings={"tf32": False}, device="cpu").tf32 is False
    with pytest.raises(ConfigError, match="tf32 must be true or false"):
        run_options(settings={"tf32": "yes"}, device="cpu")


def test_cudnn_benchmark_option_sets_the_switch_on_cuda_only(monkeypatch):
    import torch

    from ocdl.errors import ConfigError
    from ocdl.run.device import apply_precision
    from ocdl.run.options import RunOptions, run_options
    assert RunOptions().cudnn_benchmark is True
    with pytest.raises(ConfigError, match="cudnn_benchmark must be true or false"):
        run_options(settings={"cudnn_benchmark": 1}, device="cpu")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    apply_precision(RunOptions(), torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    apply_precision(RunOptions(), torch.device("cuda"))  # sets switches only, needs no GPU
    assert torch.backends.cudnn.benchmark is True
    apply_precision(run_options(settings={"cudnn_benchmark": False}, device="cpu"),
                    torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is False


def test_a_solver_block_key_reaches_the_solver(tmp_path):
    """``--set sparsity.target=0.05`` is E-MSA's ``nonzero_target`` (recorded flat)."""
    from ocdl.api import solve
    model = model_path("quickstart")
    r = solve(model, "emsa-ternary", epochs=1, out=tmp_path / "r", device="cpu",
              overrides={"sparsity.target": 0.05, "data.limit": 200})
    assert r.config["solver"]["hp"]["nonzero_target"] == 0.05
    assert r.config["overrides"] == {"sparsity.target": 0.05, "data.limit": 200}


def test_every_run_option_is_in_the_readme_table():
    """The README's run-settings table names every field of RunOptions (run.KEY)."""
    import dataclasses
    from pathlib import Path

    from ocdl.run.options import RunOptions
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("**Run settings**", 1)[1].split("**Data settings**", 1)[0]
    missing = [f.name for f in dataclasses.fields(RunOptions) if f"`run.{f.name}`" not in table]
    assert missing == []
