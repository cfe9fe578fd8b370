"""``ocdl data`` commands."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from ocdl.cli.data_cmd import data
from ocdl.errors import DataError


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no ellipses in the captured output


def _run(*args):
    return CliRunner().invoke(data, list(args))


def test_list():
    r = _run("list")
    assert r.exit_code == 0, r.output
    for name in ("mnist", "fashion-mnist", "cifar-10", "mnist-subset", "embedded in ocdl"):
        assert name in r.output
    assert "not found" in r.output


def test_info_embedded():
    r = _run("info", "mnist-subset", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert "embedded:mnist-subset" in r.output and "7,000" in r.output and "2,000" in r.output


def test_info_own_npz(tmp_path):
    import numpy as np
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((30, 4), np.uint8), y_train=np.arange(30) % 2,
             classes=np.array(["no", "yes"]))
    r = _run("info", str(p))
    assert r.exit_code == 0 and "yes" in r.output and "carved" in r.output


def test_missing_is_a_data_error():
    r = _run("info", "cifar-10")
    assert r.exit_code != 0 and isinstance(r.exception, DataError)
    assert "OCDL_DATA" in str(r.exception)
    r = _run("fetch", "mnist-subset")
    assert isinstance(r.exception, DataError)


def test_search_path(monkeypatch, tmp_path):
    monkeypatch.setenv("OCDL_DATA", str(tmp_path))
    r = _run("search-path")
    assert r.exit_code == 0 and str(tmp_path) in r.output and "OCDL_DATA" in r.output


@pytest.mark.parametrize("cmd", ["list", "info", "fetch", "search-path"])
def test_help(cmd):
    assert _run(cmd, "--help").exit_code == 0
