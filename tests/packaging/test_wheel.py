"""A wheel built from the checkout, installed into a fresh environment outside it, runs
``ocdl solve`` on a shipped model with a shipped preset and a shipped recipe: the models, presets
and recipes travel as package data, not as files beside the checkout."""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv (outside the checkout) with the wheel installed and nothing of the checkout on its
    path; its dependencies (torch, …) come from this environment's site-packages through a .pth
    file, so the test does not download them (the checkout's editable-install hook, a .pth file
    there, is not run for a path listed this way)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy of the files git knows (tracked, or new and not ignored): setuptools
    # builds in the source tree, and a build/ left there would carry stale modules into it
    src = tmp / "src"
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
         "-q", "-w", tmp / "dist"], cwd=tmp)
    wheel = next((tmp / "dist").glob("ocdl-*.whl"))
    env = tmp / "env"
    run([sys.executable, "-m", "venv", "--without-pip", env], cwd=tmp)
    py = env / "bin" / "python"
    purelib = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       cwd=tmp).stdout.strip())
    deps = [p for p in site.getsitepackages() + [sysconfig.get_path("purelib")] if Path(p).is_dir()]
    (purelib / "deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q",
         wheel], cwd=tmp)
    return env


def test_the_wheel_is_what_runs(installed, tmp_path):
    out = run([installed / "bin" / "python", "-c", "import ocdl; print(ocdl.__file__)"],
              cwd=tmp_path).stdout.strip()
    assert Path(out).is_relative_to(installed) and not Path(out).is_relative_to(ROOT)


def test_shipped_models_presets_and_recipes_are_in_the_wheel(installed, tmp_path):
    ocdl = installed / "bin" / "ocdl"
    assert "quickstart" in run([ocdl, "models"], cwd=tmp_path).stdout
    assert "emsa-ternary" in run([ocdl, "solvers"], cwd=tmp_path).stdout
    assert "mnist-ternary-20" in run([ocdl, "recipes"], cwd=tmp_path).stdout


def test_ocdl_solve_runs_from_the_wheel_outside_the_checkout(installed, tmp_path):
    ocdl = installed / "bin" / "ocdl"
    run([ocdl, "solve", "quickstart", "--solver", "emsa-ternary", "--epochs", "1", "--set",
         "data.limit=300", "--out", tmp_path / "run", "--quiet"], cwd=tmp_path)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_test_acc"] > 0.3
    run([ocdl, "solve", "--recipe", "quickstart", "--epochs", "1", "--set", "data.limit=300",
         "--out", tmp_path / "recipe", "--quiet"], cwd=tmp_path)
    assert (tmp_path / "recipe" / "summary.json").is_file()
