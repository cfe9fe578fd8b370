"""What every export format starts from: a run's trained System, its spec as text, and the
flat state dict ``<stage>.<name>`` of its ``torch.nn.Module`` form (:mod:`ocdl.to_torch`)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import DeployError


@dataclasses.dataclass
class Trained:
    """A run's trained network: the System (controls and statistics loaded, on the CPU),
    its spec as YAML text (``initial_controls`` dropped: the trained values travel with the
    export), the run folder and which controls were used (``final``, ``best``, ``last``)."""

    system: Any
    spec_text: str
    run_dir: Path
    controls: str


def trained(run_dir: str | Path, controls: str = "auto") -> Trained:
    """The trained network of the run folder ``run_dir`` (``controls`` as for ``ocdl
    evaluate``), on the CPU in float32; as :func:`ocdl.run.evaluation.load_trained` reads it,
    without its data (an export needs none)."""
    from ..errors import CheckpointError, ConfigError, OcdlError
    from ..run.evaluation import _controls_file, _read_state
    from ..run.folder import CONFIG, read_config
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml there); give a folder "
                          "written by ocdl solve")
    used, path = _controls_file(run_dir, controls)
    spec = read_config(run_dir / CONFIG).spec()
    system = spec.compile(device="cpu")
    try:
        system.load_state_dict(_read_state(path, used, torch.device("cpu")))
    except CheckpointError:
        raise
    except OcdlError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if getattr(spec, "initial_controls", None) is not None:
        spec = dataclasses.replace(spec, initial_controls=None)
    return Trained(system, spec.to_yaml(), Path(run_dir), used)


def flat_state(system: Any) -> dict[str, torch.Tensor]:
    """The controls θ and buffers of ``system`` by the names of its module's ``state_dict()``:
    ``<stage>.<param>`` (the control's name) and ``<stage>.<buffer>``; CPU copies."""
    out = {name: t.detach().cpu().clone() for name, t in system.theta.items()}
    for st in system.all_stages():
        for k, v in st.buffers.items():
            out[f"{st.name}.{k}"] = v.detach().cpu().clone()
    return out


def load_flat(system: Any, flat: dict[str, torch.Tensor], where: str) -> None:
    """Copy a flat state dict (:func:`flat_state`, or a module's ``state_dict()``: its
    ``num_batches_tracked`` entries are ignored) into ``system``; a missing, extra or misshapen
    tensor is a :class:`DeployError` naming ``where``."""
    flat = {k: v for k, v in flat.items() if not k.endswith(".num_batches_tracked")}
    theta = {k: flat.pop(k) for k in list(flat) if k in system.theta}
    buffers: dict[str, dict[str, torch.Tensor]] = {}
    for st in system.all_stages():
        for k in st.buffers:
            if f"{st.name}.{k}" in flat:
                buffers.setdefault(st.name, {})[k] = flat.pop(f"{st.name}.{k}")
    missing = sorted(set(system.theta) - set(theta))
    if missing or flat:
        what = (f"lacks {', '.join(missing[:4])}" if missing
                else f"has tensors the model does not: {', '.join(sorted(flat)[:4])}")
        raise DeployError(f"{where}: the file {what}; was it exported from another model? "
                          "Give the spec it was trained with (--model)")
    from ..errors import OcdlError
    try:
        system.load_state_dict({"theta": theta, "buffers": buffers})
    except OcdlError as e:
        raise DeployError(f"{where}: {e}") from None


def write_atomic(out: Path, write) -> None:
    """Call ``write(tmp_path)`` and move the file written there over ``out``."""
    out = Path(out)
    if out.is_dir():
        raise DeployError(f"{out} is a folder; give --out a file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise DeployError(f"could not write {out}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
