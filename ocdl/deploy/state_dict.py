"""The ``torch`` export: the module's ``state_dict()`` written with ``torch.save`` (a plain
``{name: tensor}`` dict that ``torch.load(path, weights_only=True)`` reads back and
``load_trained(run)``'s module, or an ``nn.Sequential`` written by hand with the stage names,
loads), and the spec beside it in ``<file>.yaml``.

Not a ``torch.export`` program (.pt2): ``torch.export.load`` unpickles parts of such a file with
``weights_only=False``, so ocdl could not read one back safely to evaluate it."""
from __future__ import annotations

from pathlib import Path

import torch

from .source import Trained, write_atomic


def sidecar(path: Path) -> Path:
    """The spec file that goes with an exported state dict: ``model.pt`` → ``model.pt.yaml``."""
    return path.with_name(path.name + ".yaml")


def write_state_dict(tr: Trained, out: Path) -> Path:
    state = tr.system.to_module().state_dict()
    write_atomic(out, lambda tmp: torch.save(state, tmp))
    write_atomic(sidecar(out), lambda tmp: Path(tmp).write_text(tr.spec_text, encoding="utf-8"))
    return out


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The flat state dict in ``path``, read safely (``weights_only=True``)."""
    from ..errors import DeployError
    from ..run.checkpoint import read_saved
    state = read_saved(path, "cpu", "exported state dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DeployError(f"{path} is not a state dict ({{name: tensor}}); export one with "
                          "ocdl export --format torch (for a run's checkpoint, give its folder)")
    return state
