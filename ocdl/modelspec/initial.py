"""The spec key ``initial_controls``: a file of controls θ_t (and BatchNorm statistics) that a
compiled network starts from instead of its seeded initialisation.

    initial_controls: net.controls.pt     # beside the YAML file (a relative path is read
                                          # relative to the spec's folder)

The file maps ``<stage>.<control>`` (the System's control names, e.g. ``fc1.weight``) and
``<stage>.<buffer>`` (``bn1.running_mean``, ``bn1.running_var``) to tensors. Every control of
the model must be in it, with the model's shape and values in its admissible set Θ (a binary
control holds only ±1); buffers may be left out (they keep their start: mean 0, variance 1).
``ocdl import-torch`` and :meth:`ocdl.torch_import.ImportedModel.save` write such files.

Two formats are read, both without unpickling anything: ``.pt``/``.pth`` (a dict of tensors
written by ``torch.save``, read with ``torch.load(weights_only=True)``) and ``.safetensors``
(when the ``safetensors`` package is installed). :func:`apply_initial` is called by the compiler
after the seeded initialisation; its errors are :class:`SpecError` on the field path
``initial_controls``, which the compiler locates at the spec's file and line.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SpecError, cut, did_you_mean, short

if TYPE_CHECKING:
    from ..system import Control, Stage

KEY = "initial_controls"
SUFFIXES = (".pt", ".pth", ".safetensors")
#: slack over the bytes of the model's parameters (float64) that a file may hold: metadata
_SLACK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class InitialControls:
    """The ``initial_controls`` of a spec: ``path`` as written in the spec (compared, written
    back by ``to_dict``), ``file`` the path it names (relative paths taken from the spec's
    folder) and, for a spec built in memory (:func:`ocdl.from_torch` before ``save``),
    ``tensors`` held directly (then ``path`` is None and the spec's YAML has no key)."""

    path: str | None = None
    file: Path | None = field(default=None, compare=False)
    tensors: Mapping[str, torch.Tensor] | None = field(default=None, compare=False, repr=False)

    def load(self) -> dict[str, torch.Tensor]:
        """The named tensors, on the CPU (raises :class:`SpecError` at ``initial_controls``)."""
        if self.tensors is not None:
            return dict(self.tensors)
        assert self.file is not None
        return read_tensors(self.file)


def initial_from_spec(v: Any, file: str | None) -> InitialControls:
    """Validate the value of the spec key (a path ending in .pt, .pth or .safetensors) and
    resolve it against the folder of the spec ``file`` (the working directory without one)."""
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"expected the path of a file of initial controls (.pt or .safetensors, "
                        f"beside the spec), got {short(v)}", path=KEY)
    if "\x00" in v or len(v) > 4096:
        raise SpecError(f"not a usable file path: {short(v)}", path=KEY)
    if not v.lower().endswith(SUFFIXES):
        raise SpecError(f"{short(v)} is not a .pt, .pth or .safetensors file; ocdl reads "
                        "initial controls only from these (weights only, never a pickle)",
                        path=KEY)
    p = Path(v).expanduser()
    if not p.is_absolute():
        base = Path(file).parent if file and not file.startswith("<") else Path.cwd()
        p = base / p
    return InitialControls(path=v, file=Path(os.path.abspath(p)))


def read_tensors(path: Path, limit_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """A file's flat mapping name → tensor, read without unpickling objects; a missing,
    damaged, foreign or too large file is a :class:`SpecError` at ``initial_controls``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}; write it with ocdl import-torch (or "
                        "ImportedModel.save), or remove the key", path=KEY) from None
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}", path=KEY) from None
    if limit_bytes is not None and size > limit_bytes:
        raise SpecError(f"{path} has {size:,} bytes, more than the model's controls and "
                        f"statistics can need ({limit_bytes:,}); is it the file of another "
                        "model?", path=KEY)
    if path.suffix.lower() == ".safetensors":
        data = _read_safetensors(path)
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "GLOBAL" in str(e):
                raise SpecError(f"{path} holds objects that only a full unpickle could build; "
                                "ocdl never does that (such a file could run code): save a "
                                "plain dict of tensors (torch.save({name: tensor}, path))",
                                path=KEY) from None
            raise _damaged(path, e) from None
        except Exception as e:  # noqa: BLE001 - a torn, truncated or foreign file
            raise _damaged(path, e) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                             for k, t in data.items()):
        raise SpecError(f"{path} is not a mapping of names to tensors (got "
                        f"{type(data).__name__}); save {{'fc1.weight': tensor, ...}}", path=KEY)
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise SpecError(f"{path} is a .safetensors file and the safetensors package is not "
                        "installed; pip install safetensors, or save the controls as .pt",
                        path=KEY) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        raise _damaged(path, e) from None


def _damaged(path: Path, e: Exception) -> SpecError:
    first = cut(str(e).splitlines()[0], 160) if str(e) else ""
    return SpecError(f"{path} is not a readable file of initial controls ({type(e).__name__}"
                     f"{': ' + first if first else ''}); write it again", path=KEY)


def write_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write ``tensors`` (name → tensor) to ``path`` atomically: a plain dict by ``torch.save``
    (.pt, .pth), or a .safetensors file when that package is installed; returns the path."""
    from ..run.checkpoint import _atomic
    path = Path(path)
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import save
        except ImportError:
            raise SpecError(f"cannot write {path}: the safetensors package is not installed; "
                            "pip install safetensors, or use a .pt file") from None
        _atomic(path, lambda f: f.write(save(plain)))
    else:
        _atomic(path, lambda f: torch.save(plain, f))
    return path


def apply_initial(init: InitialControls, stages: list["Stage"], controls: list["Control"],
                  theta: dict[str, torch.Tensor]) -> None:
    """θ ← the file's controls and the stages' buffers ← its statistics, in place, after
    checking every name, shape, value and set. Nothing is copied when a check fails."""
    by_stage = {st.name: st for top in stages for st in top.walk()}
    buffers = {f"{st.name}.{k}": b for st in by_stage.values() for k, b in st.buffers.items()}
    limit = None
    if init.tensors is None:
        numel = sum(c.numel for c in controls) + sum(b.numel() for b in buffers.values())
        limit = 8 * numel + 512 * (len(controls) + len(buffers)) + _SLACK_BYTES
    given = init.load() if init.tensors is not None else read_tensors(init.file, limit)
    where = init.path or "the initial controls"
    known = {c.name: c for c in controls}
    for name in given:
        if name not in known and name not in buffers:
            raise SpecError(f"{where} has '{cut(name, 60)}', which is neither a control nor a "
                            f"statistic of this model{did_you_mean(name, [*known, *buffers])}; "
                            "was the file written for another spec?", path=KEY)
    missing = [n for n in known if n not in given]
    if missing:
        raise SpecError(f"{where} lacks the control{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}; every "
                        "control needs a start value (write the file again for this spec)",
                        path=KEY)
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for name, value in given.items():
        own = theta[name] if name in known else buffers[name]
        if tuple(value.shape) != tuple(own.shape):
            raise SpecError(f"'{name}' in {where} has shape {list(value.shape)}, the model's is "
                            f"{list(own.shape)}; write the file again for this spec", path=KEY)
        if not (value.is_floating_point() or value.dtype in (torch.int8, torch.int16,
                                                              torch.int32, torch.int64)):
            raise SpecError(f"'{name}' in {where} is a {value.dtype} tensor, not numbers",
                            path=KEY)
        v = value.to(own.dtype)
        if not bool(torch.isfinite(v).all()):
            raise SpecError(f"'{name}' in {where} holds NaN or infinite values", path=KEY)
        if name in known and not known[name].cset.contains(v):
            cset = known[name].cset
            raise SpecError(f"'{name}' in {where} has values outside its set "
                            f"{cset.describe()}; map them into the set (ocdl import-torch "
                            "quantises discrete controls) or give the control a real set",
                            path=KEY)
        pairs.append((own, v))
    with torch.no_grad():
        for own, v in pairs:
            own.copy_(v)



#: the name of the copy of the initial controls in a run folder
RUN_COPY = "initial_controls.pt"


def record_in_run(spec: Any, run_dir: Path) -> Any:
    """``spec`` with its initial controls copied into the run folder ``run_dir`` (as
    :data:`RUN_COPY`, named relatively), so that the run's ``config.yaml`` (read with the folder
    as its base) builds the same start on ``--like`` and ``--resume``, however the original
    file changes; a spec without them is returned as it is."""
    import dataclasses
    init = getattr(spec, "initial_controls", None)
    if init is None:
        return spec
    target = Path(run_dir) / RUN_COPY
    write_tensors(init.load(), target)
    copy = InitialControls(path=RUN_COPY, file=Path(os.path.abspath(target)))
    return dataclasses.replace(spec, initial_controls=copy)
