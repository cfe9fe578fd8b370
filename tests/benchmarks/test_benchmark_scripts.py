"""The benchmark scripts run and parse their options (their numbers are timings, checked by eye;
these tests check that the scripts a GPU session depends on do not break on the CPU first)."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def table(stdout: str) -> dict[str, list[str]]:
    """step_overhead's rows: variant name → [ms/iter, ratio]."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.rsplit(None, 2)
        if len(parts) == 3 and parts[2].replace(".", "").isdigit():
            rows[parts[0].strip()] = parts[1:]
    return rows


def test_step_overhead_only_takes_names_with_commas_separated_by_semicolons():
    r = bench("step_overhead.py", "--device", "cpu", "--iters", "1", "--rounds", "1",
              "--warmup", "0", "--threads", "1", "--only",
              "E-MSA ternary, nonzero_target; BinaryConnect")
    assert r.returncode == 0, r.stderr
    rows = table(r.stdout)
    assert set(rows) == {"torch Adam (plain)", "E-MSA ternary, nonzero_target", "BinaryConnect"}
    assert rows["torch Adam (plain)"][1] == "1.00"  # the reference's ratio to itself


def test_step_overhead_times_bf16_autocast_on_the_cpu_too():
    r = bench("step_overhead.py", "--device", "cpu", "--iters", "1", "--rounds", "1",
              "--warmup", "0", "--threads", "1", "--only",
              "torch Adam (bf16); E-MSA ternary (bf16)")
    assert r.returncode == 0, r.stderr
    assert set(table(r.stdout)) == {"torch Adam (plain)", "torch Adam (bf16)",
                                    "E-MSA ternary (bf16)"}


def test_step_overhead_refuses_an_unknown_variant_and_names_the_choices():
    # a CUDA-only variant on the CPU, as a comma-split name would have been
    r = bench("step_overhead.py", "--device", "cpu", "--only", "E-MSA ternary (graph, bf16)")
    assert r.returncode == 2
    assert "unknown variant(s) ['E-MSA ternary (graph, bf16)']" in r.stderr
    assert "'E-MSA binary'" in r.stderr


def test_step_overhead_keeps_the_times_taken_before_a_step_raised():
    """A CUDA error ends the timing (the process cannot go on) but not the table: the rounds stop
    at the failing step and say which one it was, keeping every time taken so far."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from step_overhead import timed_rounds
    finally:
        sys.path.pop(0)
    calls = {"bad": 0}

    def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] == 4:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
    steps = {"good": lambda: None, "bad": bad}
    times: dict[str, list[float]] = {k: [] for k in steps}
    crash = timed_rounds(steps, times, lambda: None, rounds=2, iters=5)
    assert crash == "bad: RuntimeError: CUDA error: an illegal memory access was encountered"
    assert len(times["bad"]) == 3 and 3 <= len(times["good"]) <= 4
    assert timed_rounds(steps | {"bad": lambda: None}, {k: [] for k in steps}, lambda: None,
                        2, 5) == ""


def test_zoo_throughput_batch_overrides_the_models_batch_size():
    r = bench("zoo_throughput.py", "--device", "cpu", "--iters", "1", "--warmup", "0",
              "--models", "mnist-fc-binary", "--batch", "7")
    assert r.returncode == 0, r.stderr
    row = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("mnist-fc-binary")]
    assert len(row) == 1 and row[0][1] == "emsa-binary" and row[0][2] == "7"  # the model's is 100


def stand_in_python(tmp_path, fail_on: str = "nothing", evaluate_status: int = 0) -> tuple:
    """A `python` that records each `ocdl solve` (its arguments joined by '|') and writes a
    one-epoch log, or fails (exit 1) when ``fail_on`` is among its arguments, and each `ocdl
    evaluate` (into evaluate.txt beside the calls file, exiting with ``evaluate_status``: 124
    is what `timeout` returns for a command it stopped); everything else goes to the
    interpreter. Returns (the folder to put first on PATH, the calls file)."""
    shim, calls = tmp_path / "bin", tmp_path / "calls.txt"
    shim.mkdir()
    (shim / "python").write_text(f"""#!/usr/bin/env bash
if [[ "$1 $2 $3" == "-m ocdl evaluate" ]]; then
  shift 3; echo "$*" >> {tmp_path / "evaluate.txt"}; echo "  test  accuracy 51.00 %"
  exit {evaluate_status}
fi
if [[ "$1 $2 $3" == "-m ocdl solve" ]]; then
  shift 3; line=$(printf '%s|' "$@"); echo "$line" >> {calls}  # one write: parts run at once
  [[ "|$line" == *"|{fail_on}|"* ]] && exit 1
  while [[ $# -gt 0 && $1 != --out ]]; do shift; done
  mkdir -p "$2"
  echo '{{"type": "epoch", "epoch": 1, "test_acc": 0.5, "nonzero": 0.02, "time": 1.0}}' \\
    > "$2/log.jsonl"
  exit 0
fi
exec {sys.executable} "$@"
""")
    (shim / "python").chmod(0o755)
    return shim, calls


def test_emsa_vs_adam_profiles_each_solver_after_its_timed_iterations():
    r = bench("emsa_vs_adam.py", "--data", "mnist-subset", "--iters", "1", "--threads", "1",
              "--profile", "3")
    assert r.returncode == 0, r.stderr
    assert "== emsa: torch.profiler over 3 steps" in r.stdout
    assert "== adam: torch.profiler over 3 steps" in r.stdout
    assert r.stdout.count("aten::") >= 6  # three operator rows in each table


def test_gpu_suite_parts_run_the_right_models_solvers_and_augmentation(tmp_path):
    """The suite's CIFAR parts, with a stand-in `python` (the real runs need a GPU)."""
    shim, calls = stand_in_python(tmp_path)
    env = {"PATH": f"{shim}:/usr/bin:/bin", "OUT": str(tmp_path / "out"), "DEADLINE_S": "600",
           "PARTS": ("cifar-ternary-fc-sparse-cutout+cifar-binary cifar-bop "
                     "cifar-ternary-sparse-nz cifar-ternary-nz-cutout nope"),
           "CUTOUT": "8", "NZ_TARGET": "0.015", "NZ_END": "0.8"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert "unknown part 'nope'" in r.stderr and "cifar-NAME-cutout" in r.stderr
    runs = {c.split("|")[0]: c.split("|") for c in calls.read_text().splitlines()}
    cut = runs["cifar10-ternary-fc-sparse"]
    assert cut[cut.index("--solver") + 1] == "emsa-ternary"
    assert "data.augment={crop: 4, flip: true, cutout: 8}" in cut
    assert "alpha_end=0.005" in cut and "run.time_limit=535" in cut  # 600 − 25 margin − 40
    binary = runs["cifar10-binary"]  # the last of the binary-net runs: Bop
    assert binary[binary.index("--solver") + 1] == "bop" and "alpha_end=0.005" not in binary
    assert "data.augment={crop: 4, flip: true}" in binary
    nz = runs["cifar10-ternary-sparse"]
    assert nz[nz.index("--solver") + 1] == "emsa-ternary" and "nonzero_target=0.015" in nz
    assert "nonzero_start=0.5" in nz and "nonzero_end=0.8" in nz
    assert "alpha_end=0.005" in nz and "data.augment={crop: 4, flip: true}" in nz
    both = runs["cifar10-ternary"]
    assert both[both.index("--solver") + 1] == "emsa-ternary" and "nonzero_target=0.015" in both
    assert "data.augment={crop: 4, flip: true, cutout: 8}" in both and "alpha_end=0.005" in both
    summary = (tmp_path / "out" / "cifar-ternary-fc-sparse-cutout.txt").read_text()
    assert summary.startswith("# exit status 0") and "\n1 50.0 2.0 1.0" in summary
    # each run's final network evaluated again with recomputed BatchNorm statistics
    assert "# ocdl evaluate --recalibrate-bn\n  test  accuracy 51.00 %" in summary
    evaluated = (tmp_path / "evaluate.txt").read_text().splitlines()
    assert len(evaluated) == 5 and all("--recalibrate-bn --device cuda" in e for e in evaluated)
    assert any(e.startswith("/tmp/ocdl-cifar-ternary-fc-sparse-cutout ") for e in evaluated)


def test_gpu_suite_says_when_a_time_limit_stopped_an_evaluation(tmp_path):
    """The evaluation after a run gets at most 60 s (on the CPU a dry run's full CIFAR net needs
    more); a stopped one leaves a line in NAME.txt instead of ending without a word."""
    shim, _ = stand_in_python(tmp_path, evaluate_status=124)
    env = {"PATH": f"{shim}:/usr/bin:/bin", "OUT": str(tmp_path / "out"), "DEADLINE_S": "600",
           "PARTS": "cifar-binary"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = (tmp_path / "out" / "cifar-binary.txt").read_text()
    assert ("# ocdl evaluate --recalibrate-bn\n  test  accuracy 51.00 %\n"
            "# stopped by its 60-second limit\n") in summary


def test_gpu_suite_substitutes_the_picked_options_and_retries_without_them(tmp_path):
    """"auto" in CIFAR_ARGS stands for the options the `pick` part wrote; a run that fails with
    them is run again without them, keeping the other CIFAR_ARGS."""
    shim, calls = stand_in_python(tmp_path, fail_on="cuda_graph=step")
    picked = tmp_path / "picked"
    picked.write_text("--set cuda_graph=step\n")
    env = {"PATH": f"{shim}:/usr/bin:/bin", "OUT": str(tmp_path / "out"), "DEADLINE_S": "600",
           "PARTS": "cifar-binary", "PICKED": str(picked),
           "CIFAR_ARGS": "auto --set data.split.valid=0"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second = calls.read_text().splitlines()
    assert "|cuda_graph=step|" in first and "|data.split.valid=0|" in first
    assert "cuda_graph=step" not in second and "|data.split.valid=0|" in second
    summary = (tmp_path / "out" / "cifar-binary.txt").read_text()
    assert summary.startswith("# exit status 0") and "# exit status 1" in summary


def test_pick_cifar_options_takes_the_fastest_step_only_when_allowed_and_10_percent_faster(
        tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from pick_cifar_options import pick
    finally:
        sys.path.pop(0)
    rows = ["variant  ms/iter  ratio", "torch Adam (plain)  7.00  1.00",
            "E-MSA ternary (graph)  7.20  1.03", "E-MSA ternary (graph, bf16)  6.70  0.96",
            "E-MSA ternary (graph step)  5.00  0.71",
            "E-MSA ternary (graph step, bf16)  5.10  0.73"]
    assert pick(rows, allow_step=True) == "--set cuda_graph=step"
    assert pick(rows, allow_step=False) == ""  # bf16 is 7 % faster: not enough
    assert pick(rows[:3] + ["E-MSA ternary (graph, NHWC)  6.00  0.86"], allow_step=False) == \
        "--set run.channels_last=true"
    assert pick(rows[3:], allow_step=True) == ""  # no default row to compare with
    table = tmp_path / "t.txt"
    table.write_text("\n".join(rows))
    r = bench("pick_cifar_options.py", str(table), "--allow-step")
    assert r.returncode == 0 and r.stdout.strip() == "--set cuda_graph=step"


def test_startup_benchmark_prints_its_ratios():
    r = bench("startup.py", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    rows = {line[:28].strip(): line[28:].split() for line in r.stdout.splitlines()[1:]}
    assert set(rows) == {"python -c pass", "python -c 'import torch'", "ocdl --help",
                         "ocdl solve --help"}
    assert rows["python -c pass"][1] == "1.00"


def test_deploy_inference_prints_memory_and_latency_ratios_side_by_side():
    r = bench("deploy_inference.py", "--nets", "quickstart", "--rounds", "1", "--iters", "1",
              "--big-batch", "4", "--tune-batch", "2")
    assert r.returncode == 0, r.stderr
    row = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("quickstart")]
    assert len(row) == 1
    _, floating, packed, mem, b1, *_, b4, f4, p4, ratio4 = row[0]
    assert int(floating.replace(",", "")) / int(packed.replace(",", "")) >= 14
    assert mem.endswith("x") and b1 == "b1" and b4 == "b4"
    assert abs(float(p4) / float(f4) - float(ratio4)) <= 0.02 * float(ratio4) + 0.01
    assert "#   kernels: fc1=" in r.stdout


def test_cpu_epoch_puts_a_run_next_to_the_matmul_floor():
    r = bench("cpu_epoch.py", "--model", "quickstart", "--solvers", "emsa-ternary",
              "--amp", "off", "--limit", "300", "--reps", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    floor = next(ln for ln in lines if ln.startswith("matmul floor:"))
    fp32, bf16 = (float(w) for w in floor.replace(",", " ").split() if w[0].isdigit())
    assert fp32 > 0 and bf16 > 0
    row = next(ln for ln in lines if ln.startswith("ocdl solve emsa-ternary (amp off)"))
    seconds, to_fp32, to_bf16 = (float(v) for v in row.split()[-3:])
    assert seconds > 0
    assert to_fp32 == pytest.approx(seconds / fp32, rel=0.01, abs=0.01)
    assert to_bf16 == pytest.approx(seconds / bf16, rel=0.01, abs=0.01)
