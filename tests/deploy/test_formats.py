"""Every export format round-trips on a trained quickstart run: ``evaluate(FILE)`` gives the
same test accuracy and the same predictions as ``evaluate(RUN)``, scored through the file
itself (onnxruntime for ONNX)."""
import pytest
import torch

from ocdl.api import evaluate, export, load_trained
from ocdl.deploy.evaluate import predictions
from ocdl.errors import DeployError, OcdlError

SUFFIX = {"packed": ".ocdl", "torch": ".pt", "safetensors": ".safetensors", "onnx": ".onnx"}
NEEDS = {"safetensors": ["safetensors"], "onnx": ["onnx", "onnxscript", "onnxruntime"]}


@pytest.fixture(scope="module")
def reference(run_dir):
    return evaluate(run_dir, device="cpu")


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_format_round_trips(fmt, run_dir, reference, test_batch, tmp_path):
    for name in NEEDS.get(fmt, []):
        pytest.importorskip(name)
    path = export(run_dir, format=fmt, out=tmp_path / f"qs{SUFFIX[fmt]}")
    got = evaluate(path, device="cpu")
    assert got.acc == reference.acc and got.n == reference.n
    assert got.loss == pytest.approx(reference.loss, rel=1e-5)
    assert got.nonzero == reference.nonzero and got.stages == reference.stages
    want = load_trained(run_dir, device="cpu")(test_batch).detach()
    out = predictions(path, test_batch)
    assert torch.equal(out.argmax(1), want.argmax(1))
    if fmt == "onnx":
        assert torch.allclose(out, want, rtol=1e-5, atol=1e-4)
    else:
        assert torch.equal(out, want)


def test_torch_state_dict_loads_into_the_module_and_needs_its_spec(run_dir, tmp_path):
    path = export(run_dir, format="torch", out=tmp_path / "qs.pt")
    module = load_trained(run_dir, device="cpu")
    module.load_state_dict(torch.load(path, weights_only=True))
    (tmp_path / "qs.pt.yaml").unlink()
    with pytest.raises(DeployError, match="--model"):
        evaluate(path, device="cpu")
    assert evaluate(path, device="cpu", model=run_dir).acc == evaluate(run_dir).acc


def test_safetensors_carries_the_spec(run_dir, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    path = export(run_dir, format="safetensors", out=tmp_path / "qs.safetensors")
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert "name: quickstart" in f.metadata()["ocdl.spec"]


def test_export_refuses_unknown_format_and_float16_outside_packed(run_dir, tmp_path):
    with pytest.raises(DeployError, match="choose one of"):
        export(run_dir, format="tflite", out=tmp_path / "x")
    with pytest.raises(DeployError, match="packed format only"):
        export(run_dir, format="torch", out=tmp_path / "x.pt", float16=True)


def test_evaluate_refuses_run_options_for_a_file(packed_file):
    with pytest.raises(OcdlError, match="exported file"):
        evaluate(packed_file, controls="best")


@pytest.mark.parametrize("fmt, package", [("safetensors", "safetensors.torch"),
                                          ("onnx", "onnxscript")])
def test_a_missing_optional_package_is_one_line_naming_pip(fmt, package, run_dir, tmp_path,
                                                           monkeypatch):
    from ocdl.errors import MissingPackageError
    monkeypatch.setitem(__import__("sys").modules, package, None)  # its import fails
    with pytest.raises(MissingPackageError, match=r"pip install 'ocdl\[") as err:
        export(run_dir, format=fmt, out=tmp_path / f"qs{SUFFIX[fmt]}")
    assert "\n" not in str(err.value) and not (tmp_path / f"qs{SUFFIX[fmt]}").exists()


def test_export_reads_no_data(run_dir, tmp_path, monkeypatch):
    from ocdl.deploy import load
    from ocdl.modelspec.model import NetworkSpec

    def no_data(*args, **kwargs):
        raise AssertionError("export loaded the dataset")
    monkeypatch.setattr(NetworkSpec, "feeders", no_data)
    path = export(run_dir, format="packed", out=tmp_path / "qs.ocdl", controls="best")
    assert load(path).num_params() > 0
