"""The ``onnx`` export: ``torch.onnx.export`` (the dynamo exporter) of the module with a
dynamic batch size, unoptimised so that the initializers are the trained controls as they are
(ternary weights stay {−1, 0, +1}, not folded with BatchNorm), the spec in the model's
``metadata_props`` (``ocdl.spec``). Read back for evaluation with onnxruntime."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import DeployError, MissingPackageError
from .source import Trained, write_atomic

SPEC_KEY = "ocdl.spec"


def _need(name: str) -> Any:
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingPackageError(f"the onnx format needs {name}: pip install 'ocdl[onnx]' "
                                  "(onnx, onnxscript, onnxruntime)") from None


def write_onnx(tr: Trained, out: Path) -> Path:
    onnx = _need("onnx")
    _need("onnxscript")
    module = tr.system.to_module()
    x = torch.zeros((2, *tr.system.input_shape))
    batch = torch.export.Dim("batch")

    def write(tmp: Path) -> None:
        import contextlib
        import io
        import logging
        import warnings
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its notes on torchvision ops it skips
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its progress lines and deprecation notes
                program = torch.onnx.export(module, (x,), dynamo=True, optimize=False,
                                            input_names=["x"], output_names=["output"],
                                            dynamic_shapes=({0: batch},), verbose=False)
        finally:
            quiet.setLevel(level)
        model = program.model_proto
        entry = model.metadata_props.add()
        entry.key, entry.value = SPEC_KEY, tr.spec_text
        onnx.save(model, str(tmp))
    write_atomic(out, write)
    return out


def read_onnx(path: Path) -> tuple[Any, dict[str, torch.Tensor], str | None]:
    """An onnxruntime session of ``path``, its initializers by name and its spec (or None)."""
    onnx = _need("onnx")
    ort = _need("onnxruntime")
    from onnx import numpy_helper
    try:
        model = onnx.load(str(path))
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DeployError(f"{path} is not a readable ONNX model ({first}); export it again "
                          "with ocdl export --format onnx") from None
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in model.graph.initializer}
    spec = next((p.value for p in model.metadata_props if p.key == SPEC_KEY), None)
    return session, weights, spec
