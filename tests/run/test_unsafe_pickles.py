"""No file in a run folder is ever fully unpickled: a checkpoint or controls file whose pickle
would build an object (here one whose ``__reduce__`` creates a marker file) is refused with one
line naming the file, on every path that reads one, and the payload never runs."""
from __future__ import annotations

import os
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from ocdl.api import evaluate, solve
from ocdl.errors import OcdlError
from ocdl.run.evaluation import load_trained

from run_helpers import load

ROOT = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def run_dir(fake, tiny_model, tmp_path) -> Path:
    run = tmp_path / "run"
    solve(tiny_model, "fake", epochs=1, out=run, overrides={"run.device": "cpu"})
    return run


def plant(run: Path, name: str, marker: Path) -> None:
    """Replace ``run/name`` by a file that looks like ocdl's but carries the payload."""
    good = load(run / name)
    if name == "controls.pt":
        evil = {**good, "theta": {**good["theta"], "payload": Payload(marker)}}
    else:
        evil = {**good, "solver_state": {"payload": Payload(marker)}}
    torch.save(evil, run / name)


def test_the_payload_is_live(tmp_path):
    """The planted files would run code under a full unpickle (so the tests below can fail),
    shown without unpickling them: their pickle imports ``open`` (GLOBAL) and calls it (REDUCE)
    with the marker's path."""
    marker = tmp_path / "ran"
    torch.save({"format": 1, "x": Payload(marker)}, tmp_path / "evil.pt")
    with zipfile.ZipFile(tmp_path / "evil.pt") as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert any(name == "GLOBAL" and arg.split()[-1] == "open" for name, arg in ops)
    assert (("BINUNICODE", str(marker)) in ops or ("SHORT_BINUNICODE", str(marker)) in ops)
    assert any(name == "REDUCE" for name, _ in ops)
    assert not marker.exists()


@pytest.mark.parametrize("name, read", [
    ("last.pt", lambda run: solve(resume=run)),
    ("last.pt", lambda run: evaluate(run, controls="last", device="cpu")),
    ("best.pt", lambda run: evaluate(run, controls="best", device="cpu")),
    ("controls.pt", lambda run: evaluate(run, device="cpu")),
    ("controls.pt", lambda run: load_trained(run, device="cpu")),
    ("last.pt", lambda run: load_trained(run, controls="last", device="cpu")),
])
def test_every_load_path_refuses_a_malicious_pickle(run_dir, tmp_path, name, read):
    marker = tmp_path / "ran"
    plant(run_dir, name, marker)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(OcdlError) as ei:
        read(run_dir)
    msg = str(ei.value)
    assert "\n" not in msg and name in msg and "is not an ocdl" in msg, msg
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("args", [["solve", "--resume"], ["evaluate"]])
def test_cli_refuses_a_malicious_pickle_in_one_line(run_dir, tmp_path, args):
    marker = tmp_path / "ran"
    for name in ("last.pt", "best.pt", "controls.pt"):
        plant(run_dir, name, marker)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OCDL_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "ocdl", *args, str(run_dir)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr and "is not an ocdl" in p.stderr
    assert not marker.exists()
