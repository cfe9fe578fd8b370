"""The device and precision of a run: which device, torch's global TF32 and cuDNN switches,
and the forward pass's autocast and memory layout."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from .options import RunOptions


AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16}


def configure_forward(options: RunOptions, system: Any, solver: Any) -> None:
    """Set ``system``'s forward pass as the options say: the memory layout
    (``channels_last``) and autocast (``amp``), the latter after checking that ``solver`` is
    safe with it (:meth:`ocdl.solvers.base.Solver.amp_unsafe`)."""
    system.channels_last = bool(options.channels_last)
    dtype = AMP_DTYPES[options.amp]
    if dtype is None:
        return
    reason = system.autocast_refusal or solver.amp_unsafe(system)
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
