"""The benchmark scripts run and parse their options (their numbers are timings, checked by eye;
these tests check that the scripts a GPU session depends on do not break on the CPU first)."""
import subprocess
import sys

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
              "--warmup", "0", "--threads", "1", "--only", "E-MSA ternary; BinaryConnect")
    assert r.returncode == 0, r.stderr
    rows = table(r.stdout)
    assert set(rows) == {"torch Adam (plain)", "E-MSA ternary", "BinaryConnect"}
    assert rows["torch Adam (plain)"][1] == "1.00"  # the reference's ratio to itself


def test_step_overhead_refuses_an_unknown_variant_and_names_the_choices():
    # a CUDA-only variant on the CPU, as a comma-split name would have been
    r = bench("step_overhead.py", "--device", "cpu", "--only", "E-MSA ternary (graph, bf16)")
    assert r.returncode == 2
    assert "unknown variant(s) ['E-MSA ternary (graph, bf16)']" in r.stderr
    assert "'E-MSA binary'" in r.stderr


def test_zoo_throughput_batch_overrides_the_models_batch_size():
    r = bench("zoo_throughput.py", "--device", "cpu", "--iters", "1", "--warmup", "0",
              "--models", "mnist-fc-binary", "--batch", "7")
    assert r.returncode == 0, r.stderr
    row = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("mnist-fc-binary")]
    assert len(row) == 1 and row[0][1] == "emsa-binary" and row[0][2] == "7"  # the model's is 100
