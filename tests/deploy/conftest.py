"""A tiny trained ternary run (the shipped quickstart, one epoch on 200 samples) shared by the
deploy tests, and its exported files."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    from ocdl.api import solve
    out = tmp_path_factory.mktemp("deploy") / "qs"
    solve("quickstart", "emsa-ternary", epochs=1, overrides={"data.limit": 200},
          device="cpu", out=out)
    return out


@pytest.fixture(scope="session")
def packed_file(run_dir, tmp_path_factory) -> Path:
    from ocdl.api import export
    return export(run_dir, format="packed", out=tmp_path_factory.mktemp("packed") / "qs.ocdl")


@pytest.fixture(scope="session")
def test_batch(run_dir):
    from ocdl.api import load_system
    _, feeders = load_system(run_dir, device="cpu")
    return next(iter(feeders.test.epoch(0)))[0]
