"""The ``safetensors`` export: the module's flat ``state_dict()`` in a safetensors file, the
spec in its metadata (``ocdl.spec``), so the file holds the whole network."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DeployError, MissingPackageError
from .source import Trained, write_atomic

SPEC_KEY = "ocdl.spec"


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise MissingPackageError("the safetensors format needs the safetensors package: "
                                  "pip install 'ocdl[deploy]' (or pip install safetensors)"
                                  ) from None
    return safetensors.torch


def write_safetensors(tr: Trained, out: Path) -> Path:
    st = _safetensors()
    state = {k: v.contiguous() for k, v in tr.system.to_module().state_dict().items()}
    meta = {SPEC_KEY: tr.spec_text, "ocdl.controls": tr.controls}
    write_atomic(out, lambda tmp: st.save_file(state, str(tmp), metadata=meta))
    return out


def read_safetensors(path: Path) -> tuple[dict[str, Any], str | None]:
    """The tensors in ``path`` and the spec in its metadata (None when it has none)."""
    st = _safetensors()
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return st.load_file(str(path)), meta.get(SPEC_KEY)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DeployError(f"{path} is not a readable safetensors file ({first}); export it "
                          "again with ocdl export --format safetensors") from None
