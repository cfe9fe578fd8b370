"""``ocdl export RUN --format F --out FILE`` and ``ocdl evaluate FILE`` on a tiny run."""
import json

import pytest
from click.testing import CliRunner

from ocdl.cli import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from ocdl.api import solve
    out = tmp_path_factory.mktemp("cli-export") / "qs"
    solve("quickstart", "emsa-ternary", epochs=1, overrides={"data.limit": 200},
          device="cpu", out=out)
    return out


def test_export_then_evaluate_the_file_like_the_run(run_dir, tmp_path):
    out = tmp_path / "qs.ocdl"
    r = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out} (packed" in r.output
    runs = [CliRunner().invoke(cli, ["evaluate", p, "--device", "cpu", "--json"])
            for p in (str(run_dir), str(out))]
    assert all(x.exit_code == 0 for x in runs), [x.output for x in runs]
    a, b = (json.loads(x.output) for x in runs)
    assert a["acc"] == b["acc"] and a["nonzero"] == b["nonzero"]
    assert b["controls"] == "packed file's"


def test_damaged_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.ocdl"
    bad.write_bytes(b"OCDLPACK" + b"\x01\x00\x00\x00" + b"\xff\xff\x00\x00" + b"{")
    r = CliRunner().invoke(cli, ["evaluate", str(bad)])
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and r.output.count("\n") == 1
    assert "truncated" in r.output
