"""An exported file opened for evaluation (``ocdl evaluate FILE``): its format found from its
first bytes and name, its spec (inside the file: packed header, safetensors or ONNX metadata;
beside it for a torch state dict: ``<file>.yaml``; or given with ``--model``), a System holding
its tensors, and what computes the outputs: the System for packed, torch and safetensors files,
onnxruntime for an ONNX model, so the deployed artifact itself is what gets scored."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..errors import DeployError

ZIP_MAGIC = b"PK\x03\x04"


def detect(path: Path) -> str:
    """The export format of the file at ``path``: packed, torch, safetensors or onnx."""
    from .packed_codec import MAGIC
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DeployError(f"cannot read {path}: {e.strerror or e}") from None
    if head == MAGIC:
        return "packed"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".safetensors":
        return "safetensors"
    if head[:4] == ZIP_MAGIC:
        return "torch"
    raise DeployError(f"{path}: not an exported network ocdl knows (packed, a torch state dict, "
                      ".safetensors or .onnx); give a run folder or a file of ocdl export")


@dataclasses.dataclass
class Artifact:
    """An opened exported file: its format, the System with its tensors (for the data, the
    terminal loss and the counts of non-zero controls), and ``predict`` computing x_T."""

    path: Path
    format: str
    system: Any
    session: Any = None  # an onnxruntime session for an ONNX file

    @property
    def device(self) -> torch.device:
        return self.system.device

    def terminal(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.system.terminal(out, y)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            return self.system.predict(x)
        name = self.session.get_inputs()[0].name
        out = self.session.run(None, {name: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def _spec(path: Path, inside: str | None, model: Any) -> Any:
    """The spec of an exported file: ``model`` when given (a spec file, a shipped model's name
    or a run folder), else the one the file carries."""
    if model is not None:
        model_path = Path(str(model))
        if model_path.is_dir():
            from ..run.folder import CONFIG, read_config
            return read_config(model_path / CONFIG).spec()
        from ..run.lifecycle import load_model
        return load_model(model)
    if inside is None:
        raise DeployError(f"{path} does not hold the model spec; give it with --model SPEC "
                          "(the spec file, shipped model or run folder it was trained with)")
    from ..modelspec import loads_spec
    return loads_spec(inside, file=f"{path} (spec)")


def open_artifact(path: str | Path, *, model: Any = None, device: Any = "cpu") -> Artifact:
    """Open the exported file at ``path`` (see the module docstring)."""
    path = Path(path)
    fmt = detect(path)
    if fmt == "packed":
        from .packed_read import load
        if model is None:
            return Artifact(path, fmt, load(path, device))
        from .packed_read import decode, read_packed
        p = read_packed(path)
        flat = {e["name"]: torch.from_numpy(decode(p, e)) for e in p.tensors}
        inside = None
    elif fmt == "torch":
        from .state_dict import read_state_dict, sidecar
        flat = read_state_dict(path)
        car = sidecar(path)
        inside = car.read_text(encoding="utf-8") if car.is_file() else None
    elif fmt == "safetensors":
        from .safetensors_format import read_safetensors
        flat, inside = read_safetensors(path)
    else:
        from .onnx_format import read_onnx
        session, flat, inside = read_onnx(path)
    system = _spec(path, inside, model).compile(device=device)
    from .source import load_flat
    if fmt == "onnx":  # the initializers: the controls and statistics under their names
        names = set(system.theta) | {f"{st.name}.{k}" for st in system.all_stages()
                                     for k in st.buffers}
        load_flat(system, {k: v for k, v in flat.items() if k in names}, str(path))
        return Artifact(path, fmt, system, session)
    load_flat(system, flat, str(path))
    return Artifact(path, fmt, system)
