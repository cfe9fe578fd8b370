import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import run_fakes as fakes  # noqa: E402


@pytest.fixture
def fake(monkeypatch):
    """Stand-in solver and data layers (see run_fakes.py)."""
    fakes.install(monkeypatch)
    return fakes


@pytest.fixture
def tiny_model(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(fakes.TINY_SPEC)
    return p
