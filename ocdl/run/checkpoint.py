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

from ..errors import CheckpointError

FORMAT = 1
TMP_MARK = ".tmp-"
#: what a run checkpoint holds (see :meth:`ocdl.run.loop.Loop._payload`) and its type
CHECKPOINT_KEYS: dict[str, type | tuple[type, ...]] = {
    "system": dict, "solver_state": dict, "epoch": int, "batch": int, "iteration": int,
    "log_offset": int, "config": dict}


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
    """What :func:`save_atomic` wrote to ``path``, read with ``torch.load(weights_only=True)``
    only: tensors, numbers, strings and containers of them. A file that needs more (a pickle
    that would build other objects, and could run code) is refused, never unpickled; it and a
    torn or foreign file raise :class:`CheckpointError`, one line naming the file."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # a damaged pickle stream, not one that names objects
            raise _damaged(path, what, e) from None
        raise CheckpointError(f"{path} is not an ocdl {what or 'checkpoint'}: it holds objects "
                              "that only a full unpickle could build (ocdl never does that: "
                              "such a file could run code); use a file written by ocdl solve"
                              ) from None
    except Exception as e:  # noqa: BLE001 - a torn, truncated or foreign file
        raise _damaged(path, what, e) from None


def _damaged(path: Path, what: str, e: Exception) -> CheckpointError:
    first = str(e).splitlines()[0][:160] if str(e) else ""
    return CheckpointError(f"{path} is not a readable ocdl {what or 'checkpoint'} (damaged or "
                           f"truncated: {type(e).__name__}{': ' + first if first else ''}); "
                           "restore it from a copy, or start the run again")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a run checkpoint written by :func:`save_atomic` (``last.pt``, ``best.pt``), safely
    (:func:`read_saved`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; --resume takes a run folder that holds "
                              "last.pt")
    ck = read_saved(path, map_location, "run checkpoint")
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ocdl run checkpoint (format {FORMAT})")
    bad = [k for k, kind in CHECKPOINT_KEYS.items() if not isinstance(ck.get(k), kind)
           or isinstance(ck.get(k), bool)]
    if bad:
        raise CheckpointError(f"{path} is not a complete ocdl run checkpoint (missing or wrong: "
                              f"{', '.join(bad)}); restore it from a copy")
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
