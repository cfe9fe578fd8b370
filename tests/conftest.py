import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from seed 0 and leaves torch's thread count as it found it (the order
    of float sums, and so bit-for-bit comparisons with runs in subprocesses, depend on it)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def shared_datasets() -> Path | None:
    """The folder of real datasets (from $OCDL_DATA or ../shared/datasets), if present."""
    for entry in os.environ.get("OCDL_DATA", "").split(":") + [str(ROOT.parent / "shared" / "datasets")]:
        if entry and (Path(entry) / "mnist").is_dir():
            return Path(entry)
    return None


def score_module_like_system(module, system, feeder, tol: float = 1e-6):
    """Run ``module`` (a trained net as a torch module) and ``system.predict`` on every batch of
    ``feeder``: logits equal within ``tol``, the same argmax; returns (correct, mean loss, n) of
    the module, the loss by the system's terminal cost."""
    correct, loss, n = 0, 0.0, 0
    with torch.no_grad():
        for x, y in feeder.epoch(0):
            logits = module(x)
            reference = system.predict(x)
            torch.testing.assert_close(logits, reference, rtol=tol, atol=tol)
            assert torch.equal(logits.argmax(1), reference.argmax(1))
            correct += int((logits.argmax(1) == y).sum())
            loss += float(system.terminal(logits, y).double().sum())
            n += len(y)
    return correct, loss / n, n
