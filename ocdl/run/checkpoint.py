"""Checkpoints written atomically, and the RNG states that make a resumed run bit-identical.

A checkpoint is written to a temporary file in the run folder, flushed and fsync'ed, then moved
over the old one with :func:`os.replace` (atomic on POSIX and Windows), and the folder is
fsync'ed. A crash or kill at any moment leaves either the old or the new checkpoint, never a
torn one; stale temporary files are removed by :func:`remove_stale_temps`.
"""
from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import OcdlError

FORMAT = 1
TMP_MARK = ".tmp-"


class CheckpointError(OcdlError):
    """A checkpoint cannot be written or read."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def _atomic(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path``."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"could not write {path}: {e}; the previous checkpoint is "
                                  "kept") from None
        raise
    _fsync_dir(path.parent)


def save_atomic(payload: dict[str, Any], path: str | Path) -> None:
    """``torch.save(payload)`` to ``path`` atomically."""
    _atomic(Path(path), lambda f: torch.save(payload, f))


def copy_atomic(src: str | Path, dst: str | Path) -> None:
    """Copy a written checkpoint to ``dst`` atomically (``best.pt`` from ``last.pt``)."""
    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)
    _atomic(Path(dst), write)


def write_text_atomic(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode("utf-8")))


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temporary files left by a run killed while saving; returns what was removed."""
    removed = []
    for p in Path(folder).glob(f".*{TMP_MARK}*"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def read_saved(path: Path, map_location: Any = "cpu", what: str = "") -> Any:
    """What :func:`save_atomic` wrote to ``path`` (tensors only, unless the solver state needs
    more: then the file is trusted as the user's own); a torn or foreign file raises
    :class:`CheckpointError` ("cannot read <what><path>")."""
    try:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file
        raise CheckpointError(f"cannot read {what}{path}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic` (tensors only, unless the solver state
    needs more: then the file is trusted as the user's own)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; --resume takes a run folder that holds "
                              "last.pt")
    ck = read_saved(path, map_location, "checkpoint ")
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ocdl run checkpoint (format {FORMAT})")
    return ck


# ---------------------------------------------------------------------- RNG states
def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), python ``random`` and numpy's global RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """All global RNG states, in a form ``torch.load(weights_only=True)`` can read back."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys.numpy(), dtype=np.uint32), pos, has_gauss,
                         cached))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
