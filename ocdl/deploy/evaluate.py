"""``ocdl evaluate FILE``: an exported file scored as ``ocdl evaluate RUN`` scores a run folder,
on a split of the data named in its spec (never augmented), through the artifact itself
(:mod:`ocdl.deploy.artifact`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError


def evaluate_file(path: str | Path, *, split: str = "test", device: str | None = None,
                  model: Any = None):
    """An :class:`~ocdl.run.evaluation.Evaluation` of the exported file at ``path`` on
    ``split``; ``model``: the spec when the file carries none (or to replace its own)."""
    from ..run.device import resolve_device
    from ..run.evaluation import SPLITS, score
    from .artifact import open_artifact
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got '{split}'")
    dev = resolve_device(device or "auto")
    art = open_artifact(path, model=model, device="cpu" if _onnx(path) else dev)
    feeders = art.system.spec.for_evaluation().feeders(art.system, art.device)
    feeder = getattr(feeders, split)
    if feeder is None or len(feeder) == 0:
        raise ConfigError(f"the spec of {path} has no {split} split; evaluate on another one "
                          "with --split")
    return score(art, art.system, feeder, path, f"{art.format} file's", split)

def _onnx(path: str | Path) -> bool:
    from .artifact import detect
    return detect(Path(path)) == "onnx"


def predictions(path: str | Path, x: Any, *, model: Any = None) -> Any:
    """The outputs x_T of the exported file at ``path`` for the batch ``x`` (on the CPU)."""
    from .artifact import open_artifact
    import torch
    with torch.no_grad():
        return open_artifact(path, model=model).predict(x)
