"""benchmarks/scaling.py's communication model: bytes all-reduced per step and ring times."""
import subprocess
import sys

from tests.conftest import ROOT


def test_communication_model_counts_the_controls_and_the_ring_all_reduce_time():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--model-only"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:5]}
    # quickstart: 784·256 + 256·256 + 256·10 weights + 2·(256 + 256 + 10) BatchNorm γ, β
    p = 784 * 256 + 256 * 256 + 256 * 10 + 2 * (256 + 256 + 10)
    q = rows["quickstart"]
    assert q[1] == f"{p:,}" and q[2] == f"{4 * p / 1e6:.2f}MB"
    # 100 GbE, N = 8: 2·7/8 · 4p bytes / 12 GB/s
    assert float(q[9]) == round(2 * 7 / 8 * 4 * p / 12e9 * 1e3, 3)
    assert set(rows) == {"quickstart", "mnist-fc-ternary", "cifar10-ternary"}
