"""Resolving a run's configuration: model spec (what) + solver preset (how) + loop options.

The three are kept apart. ``--set key=value`` settings are routed by prefix:

* ``data.<key>`` (``data.batch_size=50``, ``data.split.train=50000``) → the spec's ``data:`` block,
  re-validated by :func:`ocdl.data.options.data_options_from_dict`;
* ``run.<key>`` (``run.log_every=10``) → :class:`RunOptions` of the loop;
* ``solver.<key>`` or a bare ``<key>`` (``rho=0.3``) → the solver's hyperparameters, checked by
  the solver itself.

Values are read as YAML scalars (``1e-7`` is a number, ``true`` a bool, ``[1, 2]`` a list).
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import OcdlError, SpecError, did_you_mean
from ..spec.model import ModelSpec

DEFAULT_EPOCHS = 10
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


class ConfigError(OcdlError):
    """A run setting (``--set``, ``--epochs``, ``--device``, ``--out``, ``--resume``) is invalid."""


@dataclass(frozen=True)
class RunOptions:
    """Options of the loop (not of the model, not of the solver).

    epochs: total number of epochs (a resumed run continues up to this number).
    seed: seeds the control initialisation, the global RNGs (torch, python, numpy) and the
      solver's own ``seed`` setting if it has one and it is not set explicitly; the data split
      and batch order follow ``data.seed``.
    device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available).
    log_every: iterations between host syncs of the per-iteration metrics (every iteration is
      logged; metrics stay on the device in between, so the loop never waits for the device
      on each step). NaN/inf in the loss is detected at these points and at epoch ends.
    checkpoint_every: iterations between mid-epoch checkpoints (0: only at epoch ends).
    eval_every: evaluate on the valid and test splits after every ``eval_every``-th epoch and
      after the last (1: every epoch). Epochs in between have no accuracies in their record and
      cannot become ``best.pt``; fewer evaluations leave more of a time budget for training.
    time_limit: seconds of wall time for the whole run (0: none). At each epoch's end the run
      estimates, from that epoch's training and the last evaluation's time, whether one more
      epoch and its evaluation would end within the limit; if not, this epoch is the last: it is
      evaluated (whatever ``eval_every`` says) and the run ends as completed, with a
      ``time_limit`` event in its log. Counts from the start of the run, earlier sessions of a
      resumed run included. The way to say "train for 10 minutes" and still get the final
      accuracy of the controls at the end.
    tf32: on CUDA, let matrix products and convolutions use TF32 tensor cores (10-bit mantissa
      inputs, float32 accumulation; several times faster on Ampere/Hopper). The sign-based
      closed forms of E-MSA only need M's signs and magnitudes to a few digits; set false for
      bit-for-bit float32 arithmetic. No effect on CPU.
    amp: ``off`` or ``bf16``: run the forward pass, and so the reverse pass that gives M, under
      ``torch.autocast`` in bfloat16 (matrix products and convolutions in bfloat16 with float32
      accumulation, their gradients w.r.t. the float32 controls in float32; the terminal cost in
      float32). Safe where a step only needs M = −∇_θ J: the closed forms of E-MSA and MSA on
      finite sets (only M̄'s signs and sizes matter), Adam/SGD, BinaryConnect, TWN, Bop.
      Refused for solvers that evaluate Hamiltonians or feasibility errors (E-MSA's augmented
      inner steps or ``adaptive_rho``, MSA's inner steps on real controls): differences of
      near-equal states are lost in bfloat16. Works on CPU and CUDA; pays off on tensor-core
      GPUs.
    channels_last: keep image batches (N, C, H, W) in channels-last strides through the network
      (the layout of cuDNN's tensor-core convolutions, which otherwise transposes); the
      controls and M keep their own layout. Same numbers up to float reassociation.
    cudnn_benchmark: on CUDA, let cuDNN time its convolution algorithms for each new input shape
      once and keep the fastest (``torch.backends.cudnn.benchmark``); pays off for the fixed
      batch shapes of training. Set false for cuDNN's deterministic default choice. No effect
      on CPU.
    """

    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    checkpoint_every: int = 0
    eval_every: int = 1
    time_limit: float = 0.0
    tf32: bool = True
    cudnn_benchmark: bool = True
    amp: str = "off"
    channels_last: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RUN_KEYS = tuple(f.name for f in dataclasses.fields(RunOptions))


def parse_value(text: str) -> Any:
    """A ``--set`` value as a YAML scalar (``0.3`` → float, ``1e-7`` → float, ``true`` → bool)."""
    if _FLOAT_RE.match(text.strip()):
        return float(text)
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["rho=0.3", "data.limit=2000"]`` → ``{"rho": 0.3, "data.limit": 2000}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set rho=0.3 or "
                              "--set data.batch_size=50")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key; expected key=value")
        out[key] = parse_value(value)
    return out


@dataclass
class SplitOverrides:
    """``--set`` settings sorted by destination."""

    solver: dict[str, Any]
    data: dict[str, Any]
    run: dict[str, Any]


def split_overrides(overrides: Mapping[str, Any] | None) -> SplitOverrides:
    """Route settings by prefix (see the module docstring); unknown ``run.`` keys are errors."""
    solver: dict[str, Any] = {}
    data: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        head, _, rest = str(key).partition(".")
        if head == "data" and rest:
            data[rest] = value
        elif head == "run" and rest:
            if rest not in RUN_KEYS:
                raise ConfigError(f"unknown run setting '{key}'"
                                  f"{did_you_mean(rest, RUN_KEYS)}; run settings: "
                                  f"{', '.join('run.' + k for k in RUN_KEYS)}")
            run[rest] = value
        elif head == "solver" and rest:
            solver[rest] = value
        elif head in ("data", "run", "solver"):
            raise ConfigError(f"setting '{key}' names no key; write e.g. {head}.<key>=value")
        elif "." in str(key):
            raise ConfigError(f"unknown setting '{key}': prefixes are data., run. and solver. "
                              "(a bare key such as rho=0.3 goes to the solver)")
        else:
            solver[str(key)] = value
    return SplitOverrides(solver=solver, data=data, run=run)


def _set_nested(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set data.{dotted}: data.{p} is {nxt!r}, not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def apply_data_overrides(spec: ModelSpec, data: Mapping[str, Any]) -> ModelSpec:
    """The spec with its ``data:`` block changed by ``data.<key>`` settings (re-validated)."""
    if not data:
        return spec
    from ..data.options import data_options_from_dict
    base: dict[str, Any] = (dataclasses.asdict(spec.data) if spec.data is not None else {})
    for k, v in data.items():
        _set_nested(base, k, v)
    if "name" not in base:
        raise ConfigError(f"model '{spec.name}' has no data: block; name a dataset with "
                          "--set data.name=mnist-subset (or add a data: block to the spec)")
    try:
        options = data_options_from_dict(base, "data")
    except SpecError as e:
        raise ConfigError(f"--set {e}") from None
    return dataclasses.replace(spec, data=options)


def run_options(base: RunOptions | None = None, *, epochs: int | None = None,
                seed: int | None = None, device: str | None = None,
                settings: Mapping[str, Any] | None = None) -> RunOptions:
    """Loop options: defaults ← ``base`` ← ``run.`` settings ← explicit arguments; validated."""
    d = (base or RunOptions()).to_dict()
    d.update(settings or {})
    for k, v in (("epochs", epochs), ("seed", seed), ("device", device)):
        if v is not None:
            d[k] = v
    for k in ("epochs", "log_every", "eval_every"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{k} must be a positive integer, got {v!r}")
    for k in ("seed", "checkpoint_every"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{k} must be a non-negative integer, got {v!r}")
    v = d["time_limit"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ConfigError(f"time_limit must be a number of seconds ≥ 0 (0: none), got {v!r}")
    d["time_limit"] = float(v)
    if d["amp"] not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {d['amp']!r}")
    for k in ("tf32", "cudnn_benchmark", "channels_last"):
        if not isinstance(d[k], bool):
            raise ConfigError(f"{k} must be true or false, got {d[k]!r}")
    d["device"] = str(d["device"])
    resolve_device(d["device"])  # validate now, before anything is built
    return RunOptions(**d)


AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16}


def configure_forward(options: RunOptions, system: Any, solver: Any) -> None:
    """Set ``system``'s forward pass as the options say: the memory layout
    (``channels_last``) and autocast (``amp``), the latter after checking that ``solver`` is
    safe with it (:meth:`ocdl.solvers.base.Solver.amp_unsafe`)."""
    system.channels_last = bool(options.channels_last)
    dtype = AMP_DTYPES[options.amp]
    if dtype is None:
        return
    from ..symbolic.system import EquationSystem
    reason = ("equation-defined systems are integrated in their own dtype"
              if isinstance(system, EquationSystem) else solver.amp_unsafe(system))
    if reason:
        raise ConfigError(f"run.amp={options.amp} is not safe with solver "
                          f"'{getattr(solver, 'name', solver)}' here: {reason}; set "
                          f"run.amp=off (--set run.amp=off)")
    system.autocast = dtype


def apply_precision(options: RunOptions, device: torch.device) -> None:
    """Set torch's TF32 and cuDNN autotuning switches for a CUDA run from ``options.tf32`` and
    ``options.cudnn_benchmark``."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(options.tf32)
        torch.backends.cudnn.allow_tf32 = bool(options.tf32)
        torch.backends.cudnn.benchmark = bool(options.cudnn_benchmark)


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; checks that a named CUDA device exists."""
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA GPU is available to torch; "
                              "use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' does not exist; this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device '{name}'; use cpu, cuda, cuda:N or auto")
    return dev


def solver_label(solver: str) -> str:
    """Short name of a solver preset or preset file, for folder names."""
    p = Path(str(solver))
    return p.stem if p.suffix in (".yaml", ".yml") else str(solver)


def default_run_dir(stem: str, root: str | Path = "runs") -> Path:
    """``runs/<stem>-<timestamp>`` (a numeric suffix if that exists already); the stem is
    e.g. ``<model>-<solver>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", stem)
    base = Path(root) / f"{safe}-{stamp}"
    path, k = base, 2
    while path.exists():
        path = base.with_name(f"{base.name}-{k}")
        k += 1
    return path


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
