"""A run folder: the names of its files, the lock held by the process that writes it, and the
one safe reader of its ``config.yaml``.

A run folder holds ``config.yaml`` (what the run is: spec, solver, settings, loop options),
``log.jsonl``, the checkpoints ``last.pt`` and ``best.pt``, at the end ``controls.pt`` and
``summary.json``, and ``.ocdl.lock``: an OS file lock (:mod:`filelock`, ``flock`` on POSIX) that
the writing process holds from creating the folder to the end of the run, so that a second
``ocdl solve --out`` or ``--resume`` on the same folder is refused instead of interleaving its
epochs with the first one's. The OS drops the lock when the process ends, however it ends
(kill -9 included), so a lock is never left stale.

Files someone else wrote are read safely: ``config.yaml`` with the spec loader's YAML reader
(:func:`ocdl.modelspec.yaml_io.parse_yaml`: no Python objects, bounded nesting and alias expansion);
errors name the file and line.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import filelock
import torch

from ..errors import ConfigError, RunFolderBusy, SpecError
from ..modelspec.model import ModelSpec
from .options import RunOptions
from .results import RunResult, improved_best, result_from_history

CONFIG = "config.yaml"
LOG = "log.jsonl"
LAST = "last.pt"
BEST = "best.pt"
CONTROLS = "controls.pt"
SUMMARY = "summary.json"
LOCK = ".ocdl.lock"
#: files whose presence means the folder holds a run (started, perhaps killed before its
#: first checkpoint)
RUN_MARKERS = (CONFIG, LOG, LAST)


class RunLock:
    """The lock of one run folder, held by the process that writes it (see the module
    docstring). ``acquire`` never waits: a folder in use is an error at once."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._lock = filelock.FileLock(str(self.run_dir / LOCK))

    def acquire(self) -> "RunLock":
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunFolderBusy(f"run folder {self.run_dir} is in use by another ocdl process "
                                f"(it holds {self.run_dir / LOCK}); wait for that run to end, "
                                "or choose another --out") from None
        except OSError as e:
            raise ConfigError(f"cannot lock run folder {self.run_dir}: {e.strerror or e}; "
                              "choose a folder you can write to with --out") from None
        return self

    def release(self) -> None:
        self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run (started, finished or killed at any point)."""
    return any((run_dir / f).exists() for f in RUN_MARKERS)


def make_out_folder(out: str | Path, what: str) -> Path:
    """The folder ``--out`` names, created if missing; a one-line :class:`ConfigError` when it
    is a file or cannot be created (``what``: how the message calls it)."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {what} {folder}: {e.strerror or e}; choose another "
                          "--out") from None
    return folder


def claim(out: str | Path | None, stem: str) -> tuple[Path, RunLock]:
    """Create and lock the folder of a new run: ``out``, or :func:`new_run_dir` of ``stem`` (so
    two runs started in the same second get two folders). Refuses a file, a folder in use and a
    folder that holds a run."""
    run_dir = new_run_dir(stem) if out is None else make_out_folder(out, "run folder")
    lock = RunLock(run_dir).acquire()
    if holds_run(run_dir):
        lock.release()
        raise ConfigError(f"run folder {run_dir} already holds a run; continue it with "
                          f"--resume {run_dir}, or choose another --out")
    return run_dir, lock


def new_run_dir(stem: str, root: str | Path = "runs") -> Path:
    """Create ``root/<stem>-<timestamp>``, or with a suffix ``-2``, ``-3`` … the first of them
    that no other process has made (atomic ``mkdir``); the stem is e.g. ``<model>-<solver>``."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", stem)
    base = root / f"{safe}-{stamp}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {root}: {e.strerror or e}; give a run folder with "
                          "--out") from None
    path, k = base, 2
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path = base.with_name(f"{base.name}-{k}")
            k += 1
        except OSError as e:
            raise ConfigError(f"cannot create run folder {path}: {e.strerror or e}; give one "
                              "with --out") from None


@dataclasses.dataclass
class RunConfig:
    """A run's ``config.yaml``, read: the mapping, the line of every field (``model.stages[2]``
    → 14) and the file."""

    data: dict[str, Any]
    lines: dict[str, int]
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def spec(self):
        """The model spec recorded in the run (its ``model:`` block). A damaged or edited block
        is a :class:`ConfigError` that names this file and the line, not the model file the run
        was started from."""
        from ..modelspec.validate import spec_from_dict
        prefix = "model."
        lines = {k[len(prefix):]: v for k, v in self.lines.items() if k.startswith(prefix)}
        if "model" in self.lines:
            lines[""] = self.lines["model"]
        try:
            return spec_from_dict(self.data["model"], lines=lines, file=str(self.path))
        except SpecError as e:
            raise ConfigError(f"{e} (the model recorded in the run folder: it is written by "
                              "ocdl solve and should not be edited)") from None


#: the parts of a run config that a resumed run keeps (its loop options may change)
KEPT_ON_RESUME = ("model", "solver", "overrides")


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first field path (``model.stages[0].units``) where the plain data ``a`` and ``b``
    differ, or ``None``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                return sub
            d = first_difference(a[k], b[k], sub)
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    return None if a == b and type(a) is type(b) or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b
        and not isinstance(a, bool) and not isinstance(b, bool)) else path


def check_same_run(on_disk: RunConfig, recorded: dict[str, Any], checkpoint: Path) -> None:
    """Refuse to resume when ``config.yaml`` says another run than the checkpoint: edited or
    damaged, it would be silently overwritten otherwise."""
    for key in KEPT_ON_RESUME:
        diff = first_difference(on_disk.get(key), plain(recorded.get(key)), key)
        if diff is not None:
            line = on_disk.lines.get(diff) or on_disk.lines.get(key)
            where = f"{on_disk.path}:{line}" if line else str(on_disk.path)
            raise ConfigError(f"{where}: {diff} differs from the run recorded in {checkpoint} "
                              "(edited or damaged?); a resumed run keeps its settings: restore "
                              "the file, or move it away to have it written again from the "
                              "checkpoint; for other settings start a new run with --like")


def read_config(path: str | Path, what: str = "") -> RunConfig:
    """Read a run's ``config.yaml`` (or raise a one-line :class:`ConfigError` that names the
    file, the line where it can, and what is wrong): it must be UTF-8 YAML, a mapping with
    ``model``, ``solver`` (with a ``name``) and ``run``. ``what`` starts the message (e.g.
    ``"--like: "``)."""
    from ..modelspec.yaml_io import parse_yaml, read_utf8
    path = Path(path)
    try:
        data, lines = parse_yaml(read_utf8(path), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{what}{path}: no such file; give a run folder written by ocdl "
                          "solve") from None
    except OSError as e:
        raise ConfigError(f"{what}cannot read {path}: {e.strerror or e}") from None
    except SpecError as e:
        raise ConfigError(f"{what}{e.located(str(path), e.line) if not e.file else e} "
                          "(a damaged run config: restore it from a copy)") from None
    missing = [k for k in ("model", "solver", "run") if not isinstance(data, dict)
               or not isinstance(data.get(k), dict)]
    if not missing and not isinstance(data["solver"].get("name"), str):
        missing = ["solver.name"]
    if missing:
        raise ConfigError(f"{what}{path} is not an ocdl run config (no {', '.join(missing)}); "
                          "give the config.yaml of a folder written by ocdl solve, or restore "
                          "it from a copy if it was damaged")
    return RunConfig(data, lines, path)


def load_run(run_dir: str | Path) -> RunResult:
    """A run read back from its folder: the per-epoch history from ``log.jsonl``, the outcome
    (model, solver, seed, device, status, wall time, non-zero fraction) from ``summary.json``;
    a run that never wrote one (killed, or still running) gets status ``unfinished``, its model,
    solver and device from ``config.yaml`` and the rest from its last epoch. Accuracies are recomputed
    from the history as the loop does (best by valid accuracy, else by test accuracy)."""
    from .metrics import read_log
    p = Path(run_dir)
    if not (p / "log.jsonl").is_file():
        raise ConfigError(f"{p}: not a run folder (no log.jsonl there); give folders written by "
                          "ocdl solve or ocdl compare")
    history = [r for r in read_log(p / "log.jsonl") if r.get("type") == "epoch"]
    try:
        s = json.loads((p / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        s = {}
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"{p / 'summary.json'}: unreadable ({str(e)[:120]}); delete it to read "
                          "the run from its log alone") from None
    if not s:
        try:
            cfg = read_config(p / CONFIG).data
        except ConfigError:
            cfg = {}
        s = {"model": (cfg.get("model") or {}).get("name", "?"),
             "solver": (cfg.get("solver") or {}).get("name", "?"),
             "seed": (cfg.get("run") or {}).get("seed", 0),
             "device": (cfg.get("run") or {}).get("device_resolved", "?"),
             "status": "unfinished"}
    best: dict[str, Any] = {}
    for h in history:
        best = improved_best(best, h) or best
    last = history[-1] if history else {}
    return result_from_history(
        history, run_dir=p, model=str(s.get("model", "?")), solver=str(s.get("solver", "?")),
        seed=int(s.get("seed", 0)), device=str(s.get("device", "?")), best=best,
        wall_time=float(s.get("wall_time", last.get("time", 0.0))),
        nonzero=s.get("nonzero_fraction", last.get("nonzero")),
        status=str(s.get("status", "unfinished")))


# ---------------------------------------------------------------------- the record
def solver_label(solver: str) -> str:
    """Short name of a solver preset or preset file, for folder names."""
    p = Path(str(solver))
    return p.stem if p.suffix in (".yaml", ".yml") else str(solver)


def plain(value: Any) -> Any:
    """A YAML/JSON-friendly copy of ``value`` (tuples → lists, tensors → numbers/lists)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    return str(value)


def build_config(spec: ModelSpec, solver_name: str, solver_hp: Mapping[str, Any],
                 overrides: Mapping[str, Any], options: RunOptions, device: torch.device
                 ) -> dict[str, Any]:
    """The resolved configuration written to ``config.yaml`` and into every checkpoint."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ver = version("ocdl")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        ver = "unknown"
    return {
        "ocdl_version": ver,
        "model_file": spec.source,
        "model": spec.to_dict(),
        "solver": {"name": str(solver_name), "hp": plain(dict(solver_hp))},
        "overrides": plain(dict(overrides)),
        "run": {**options.to_dict(), "device_resolved": str(device)},
        "torch": str(torch.__version__),
    }


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Write ``run_dir/config.yaml`` (atomically) from the record ``config``."""
    from ..modelspec.yaml_io import dump_yaml
    from .checkpoint import write_text_atomic
    write_text_atomic(run_dir / CONFIG, dump_yaml(plain(config)))
