"""``ocdl explain`` on the corpus of nasty specs (``tests/modelspec/nasty``: each file says in its
first line what it attacks): exit code 2, one line on stderr starting ``error:``, no traceback,
quickly. In-process for every file, and as real processes for a few (the import costs ~2 s)."""
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from ocdl.cli import cli
from tests.conftest import ROOT

NASTY = sorted((ROOT / "tests/modelspec/nasty").glob("*.yaml"))


def test_the_corpus_is_there_and_says_what_it_attacks():
    assert len(NASTY) >= 40
    for p in NASTY:
        assert p.read_bytes().startswith(b"# attacks: "), p.name


@pytest.mark.parametrize("path", NASTY, ids=[p.stem for p in NASTY])
def test_explain_refuses_in_one_line(path):
    start = time.perf_counter()
    r = CliRunner().invoke(cli, ["explain", str(path)])
    elapsed = time.perf_counter() - start
    assert r.exit_code == 2, (r.exit_code, r.output[-2000:], r.exception)
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), r.stderr[:2000]
    assert len(lines[0]) < 500 and r.stdout == ""
    assert elapsed < 2.0, f"{elapsed:.2f} s"


@pytest.mark.parametrize("name", ["nul-character", "alias-bomb", "power-tower-9",
                                  "horizon-million", "units-huge"])
def test_explain_refuses_as_a_process(name):
    path = ROOT / "tests/modelspec/nasty" / f"{name}.yaml"
    r = subprocess.run([sys.executable, "-m", "ocdl", "explain", str(path)], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), r.stderr[:2000]
