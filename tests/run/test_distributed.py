"""Data-parallel training (ocdl/run/distributed.py) on the CPU with gloo, 2 processes.

2 processes × batch 50 against 1 process × batch 100 on the quickstart (data.limit=400), with
BatchNorm statistics of the global batch (sync_bn): in float64 the discrete controls are equal
at every step and the real ones equal up to float summation order (1e-12; 1e-8 after inner
steps of Adam), for E-MSA (plain, adaptive ρ, augmented inner steps), MSA with inner steps
(Adam, L-BFGS), Adam and Bop;
both ranks hold bit-identical controls after every step (no broadcast). Then the same through
torchrun in float32, and a rank killed mid-run.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ocdl.run.checkpoint import read_saved

ROOT = Path(__file__).resolve().parents[2]
OCDL = [sys.executable, "-m", "ocdl.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(kind: str, batch: int, limit: int = 400):
    """The quickstart with ``data.limit``/``batch_size``: ternary (E-MSA), relaxed to real
    weights (Adam) or made binary (Bop)."""
    from ocdl.models import resolve_model
    from ocdl.modelspec import load_spec
    from ocdl.modelspec.validate import spec_from_dict
    from ocdl.run.overrides import apply_data_overrides
    spec = load_spec(resolve_model("quickstart"))
    if kind == "real":
        spec = spec.relaxed()
    elif kind == "binary":
        d = spec.to_dict()
        for st in d["stages"]:
            if st.get("control") == "ternary":
                st["control"] = "binary"
        spec = spec_from_dict(d)
    return apply_data_overrides(spec, {"limit": limit, "batch_size": batch})


def _train(solver: str, kind: str, world: int, settings: dict | None = None) -> dict:
    """One epoch in float64; θ after every step and the test evaluation (sharded when
    ``world`` > 1: this process is one rank of the group in its environment)."""
    from ocdl.data.feeder import make_feeders
    from ocdl.run import distributed
    from ocdl.run.metrics import evaluate
    from ocdl.solvers import make_solver
    threads = torch.get_num_threads()  # restored below: later tests of this process rely on it
    torch.set_num_threads(1)
    spec = _spec(kind, 100 // world)
    system = spec.compile(device="cpu", dtype=torch.float64, seed=0)
    s = make_solver(solver, settings or {})
    state = s.init(system)
    feeders = make_feeders(spec.data, system.input_shape, "cpu", dtype=torch.float64)
    dp = distributed.start(torch.device("cpu"), sync_bn=True)
    distributed.attach(dp, system, feeders)
    try:
        steps = []
        for x, y in feeders.train.epoch(1):
            state, metrics = s.step(system, state, x, y)
            steps.append({"theta": {k: v.detach().clone() for k, v in system.theta.items()},
                          "loss": float(metrics["loss"])})
        state = s.end_epoch(system, state, 1, 1.0)
        return {"steps": steps, "test": evaluate(system, feeders.test, 1)}
    finally:
        if dp is not None:
            dp.close()
        torch.set_num_threads(threads)


def _rank_main(rank: int, world: int, port: int, solver: str, kind: str, settings: dict,
               out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.save(_train(solver, kind, world, settings), Path(out) / f"rank{rank}.pt")


def _two_ranks(solver: str, kind: str, tmp_path: Path, settings: dict | None = None
               ) -> list[dict]:
    import torch.multiprocessing as mp
    mp.spawn(_rank_main, args=(2, _free_port(), solver, kind, settings or {}, str(tmp_path)),
             nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


# the settings that work with the per-sample costates p: every inner step's gradient, the
# feasibility errors and the replayed J are summed over the ranks
_INNER = {"emsa-adaptive": ("emsa-ternary", "ternary", {"adaptive_rho": True}),
          "emsa-augmented": ("emsa", "real", {"inner_steps": 3}),
          "emsa-augmented-adaptive": ("emsa", "real", {"adaptive_rho": True}),
          "msa-inner-steps": ("msa", "real", {"inner_steps": 3, "inner": "adam", "lr": 1e-3}),
          "msa-lbfgs": ("msa", "real", {"inner_steps": 3, "inner": "lbfgs"})}


@pytest.mark.parametrize("solver,kind,settings", [
    ("emsa-ternary", "ternary", {}), ("adam", "real", {}), ("bop", "binary", {}),
    *_INNER.values()], ids=["emsa-ternary", "adam", "bop", *_INNER])
def test_two_ranks_follow_one_process_with_the_global_batch(solver, kind, settings, tmp_path):
    one = _train(solver, kind, 1, settings)
    r0, r1 = _two_ranks(solver, kind, tmp_path, settings)
    assert len(one["steps"]) == len(r0["steps"]) == len(r1["steps"]) == 4
    from ocdl.solvers.real_controls import split_controls
    system = _spec(kind, 100).compile(device="cpu", dtype=torch.float64)
    disc, real = split_controls(system)
    for k, (a, b, c) in enumerate(zip(one["steps"], r0["steps"], r1["steps"])):
        for n in a["theta"]:  # the ranks hold the same θ, bit for bit
            assert torch.equal(b["theta"][n], c["theta"][n]), (k, n)
        for n in disc:  # discrete controls: those of the single process, exactly
            assert torch.equal(a["theta"][n], b["theta"][n]), (k, n)
        for n in real:  # real controls: up to float summation order (which Adam's g/√v, over
            # several inner steps, lifts towards 1e-9 where a gradient is near 0; an error of
            # the reduction moves θ by lr·O(1))
            err = (a["theta"][n] - b["theta"][n]).abs().max().item()
            assert err < (1e-8 if settings else 1e-12), (k, n, err)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-12, abs=0)
    assert disc or kind == "real"
    assert r0["test"]["n"] == one["test"]["n"] > 0
    assert r0["test"]["acc"] == one["test"]["acc"]
    assert r0["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=1e-12)


def test_sharded_feeder_keeps_the_rows_of_the_global_batch():
    from ocdl.data.feeder import Feeder
    from ocdl.data.types import Split
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (23, 1, 6, 6), dtype=torch.uint8, generator=g)
    split = Split(x, torch.arange(23))
    aug = {"crop": 2, "flip": True}
    whole = list(Feeder(split, batch_size=6, seed=3, augment=aug).epoch(2))
    shards = []
    for r in range(3):
        f = Feeder(split, batch_size=2, seed=3, augment=aug)
        f.set_shard(r, 3)
        shards.append([(xb, yb, f.global_size) for xb, yb in f.epoch(2)])
        assert len(f) == len(whole) == 4
    for k, (xb, yb) in enumerate(whole):  # rank r: rows [⌊rk/N⌋, ⌊(r+1)k/N⌋) of each batch,
        # augmented as the single feeder augments them
        assert torch.equal(torch.cat([shards[r][k][1] for r in range(3)]), yb)
        assert torch.equal(torch.cat([shards[r][k][0] for r in range(3)]), xb)
        assert all(shards[r][k][2] == len(yb) for r in range(3))
    assert [len(shards[r][3][1]) for r in range(3)] == [1, 2, 2]  # the last, short batch: 5


def _solve(args: list[str], nproc: int, cwd: Path, timeout: float = 120, quiet: bool = True
           ) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = OCDL + ["solve", *args, "--device", "cpu"] + ["-q"] * quiet + (
        ["--nproc", str(nproc)] if nproc > 1 else [])
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_an_error_under_nproc_is_one_line_with_its_exit_code(tmp_path):
    """Every rank meets the same user error (a folder that holds a run): rank 0 says it in one
    line, and ocdl solve --nproc exits 2 as one process would, without torchrun's traceback."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "config.yaml").write_text("ocdl_version: 0.1.0\n")
    r = _solve(["quickstart", "--epochs", "1", "--out", "busy"], 2, tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: run folder busy already holds a run; continue it with --resume busy, or "
        "choose another --out"], r.stderr[-2000:]


def test_torchrun_solve_matches_one_process_and_only_rank_0_writes(tmp_path):
    common = ["quickstart", "--solver", "emsa-ternary", "--epochs", "1",
              "--set", "data.limit=400"]
    two = _solve(common + ["--set", "data.batch_size=50", "--set", "run.sync_bn=true",
                           "--out", "two"], 2, tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    one = _solve(common + ["--set", "data.batch_size=100", "--out", "one"], 1, tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.stdout.count("run folder") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
    a = torch.load(tmp_path / "one" / "controls.pt")["theta"]
    b = torch.load(tmp_path / "two" / "controls.pt")["theta"]
    for n in a:  # float32: identical discrete controls, real ones up to summation order
        if n.startswith("fc"):
            assert torch.equal(a[n], b[n]), n
        else:
            assert (a[n] - b[n]).abs().max() < 1e-5, n
    import yaml
    assert yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())["processes"] == 2


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the process with ``RANK=rank`` among the descendants of ``parent``."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and int(stat[1]) == parent:
            return int(d.name)
    return None


def _signal_rank(tmp_path: Path, rank: int, sig: int) -> tuple[subprocess.Popen, str]:
    """Start a 2-process E-MSA job under torchrun, send ``sig`` to rank ``rank`` once it has
    written a checkpoint, and return the ended job and its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ocdl.cli", "solve", "quickstart", "--solver", "emsa-ternary", "--epochs", "40",
           "--set", "data.limit=2000", "--set", "data.batch_size=50",
           "--set", "run.checkpoint_every=5", "--device", "cpu", "-q", "--out", "run"]
    job = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "last.pt").exists():
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        pid = _rank_pid(job.pid, rank)
        assert pid is not None
        os.kill(pid, sig)
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    return job, err


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank's process in /proc")
def test_a_rank_stopped_by_torchrun_says_so_in_one_line(tmp_path):
    # what torchrun sends the others when one process fails: rank 0 ends with the one line
    # of a lost process, whether its collective or the SIGTERM comes first
    job, err = _signal_rank(tmp_path, 0, signal.SIGTERM)
    assert job.returncode != 0
    assert err.count("error: rank 0: lost another process during the run (torchrun stopped "
                     "this process)") == 1, err[-3000:]
    mine = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert all(ln.startswith(("error: rank 0: lost another process",
                              "error: rank 1: lost another process")) for ln in mine), mine
    assert "/ocdl/" not in err  # no traceback through ocdl's code (torchrun's own is its own)
    assert 1 <= read_saved(tmp_path / "run" / "last.pt")["epoch"] < 40  # not cut


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank's process in /proc")
def test_a_killed_rank_ends_the_job_and_the_run_resumes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    job, err = _signal_rank(tmp_path, 1, signal.SIGKILL)
    assert job.returncode != 0
    assert err.count("error: rank 0: lost another process") == 1, err[-3000:]
    assert "error:" not in err.replace("error: rank 0: lost another process", "")
    ck = read_saved(tmp_path / "run" / "last.pt")  # weights only, as ocdl reads it
    assert 1 <= ck["epoch"] < 40
    res = subprocess.run(OCDL + ["solve", "--resume", "run", "--epochs", str(ck["epoch"] + 1),
                                 "--device", "cpu"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert ("resuming with 1 process where the run had 2: the global batch becomes 1×50 = 50 "
            "samples (was 100)") in res.stderr
    assert "completed" in res.stdout


def test_ctrl_c_stops_every_rank_after_the_same_step_and_the_run_resumes(tmp_path):
    """Ctrl-C in a terminal reaches every process of the job (ocdl, torchrun, the ranks; torchrun
    passes it on once more): the ranks agree on the step to stop after through the next
    all-reduce, rank 0 saves and says so once, the job exits 130, and the run resumes on 2."""
    from ocdl.run.metrics import read_log
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = OCDL + ["solve", "quickstart", "--solver", "emsa-ternary", "--epochs", "40",
                  "--set", "data.limit=2000", "--set", "data.batch_size=50", "--device", "cpu",
                  "-q", "--out", "run", "--nproc", "2"]
    job = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "last.pt").exists():
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.1)
        time.sleep(0.7)  # mid-epoch, most likely
        os.killpg(job.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at "), err[-3000:]
    ck = read_saved(tmp_path / "run" / "last.pt")
    iters = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r.get("type") == "iter"]
    assert [r["iter"] for r in iters] == list(range(1, ck["iteration"] + 1))
    res = _solve(["--resume", "run", "--epochs", str(ck["epoch"])], 2, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    iters = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r.get("type") == "iter"]
    assert [r["iter"] for r in iters] == list(range(1, iters[-1]["iter"] + 1))
    assert iters[-1]["iter"] == ck["epoch"] * 20


def test_a_one_process_run_resumes_on_two(tmp_path):
    one = _solve(["quickstart", "--epochs", "1", "--set", "data.limit=400", "--out", "run"], 1,
                 tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _solve(["--resume", "run", "--epochs", "2"], 2, tmp_path, quiet=False)
    assert two.returncode == 0, two.stderr[-2000:]
    assert ("resuming with 2 processes where the run had 1: the global batch becomes 2×100 = "
            "200 samples (was 100)") in two.stderr
    from ocdl.run.metrics import read_log
    epochs = [r["epoch"] for r in read_log(tmp_path / "run" / "log.jsonl")
              if r.get("type") == "epoch"]
    assert epochs == [1, 2]
