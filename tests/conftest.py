import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def shared_datasets() -> Path | None:
    """The folder of real datasets (from $OCDL_DATA or ../shared/datasets), if present."""
    for entry in os.environ.get("OCDL_DATA", "").split(":") + [str(ROOT.parent / "shared" / "datasets")]:
        if entry and (Path(entry) / "mnist").is_dir():
            return Path(entry)
    return None
