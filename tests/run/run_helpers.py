"""Helpers shared by the run tests."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ocdl.run.metrics import TIME_KEYS


def log_records(run_dir: Path, drop_time: bool = True, drop: tuple[str, ...] = ()) -> list[dict]:
    """The records of a run's log.jsonl without the wall-time keys (and the keys ``drop``)."""
    out = []
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        r = {k: v for k, v in r.items() if k not in drop and not (drop_time and k in TIME_KEYS)}
        out.append(r)
    return out


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical controls and buffers (system.state_dict() form)."""
    assert a["theta"].keys() == b["theta"].keys()
    for k in a["theta"]:
        assert torch.equal(a["theta"][k], b["theta"][k]), k
    assert a["buffers"].keys() == b["buffers"].keys()
    for s in a["buffers"]:
        for k in a["buffers"][s]:
            assert torch.equal(a["buffers"][s][k], b["buffers"][s][k]), (s, k)


def assert_same_tree(a, b, path="") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    else:
        assert a == b, path
