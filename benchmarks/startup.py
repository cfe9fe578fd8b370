"""Start-up time of the command line: ``ocdl --help`` (and ``ocdl COMMAND --help``) against
``python -c pass`` and ``python -c "import torch"``, each a fresh process, interleaved rounds,
medians; ratios to ``python -c pass`` measured side by side in this run.

    python benchmarks/startup.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "ocdl --help": [sys.executable, "-m", "ocdl.cli", "--help"],
    "ocdl solve --help": [sys.executable, "-m", "ocdl.cli", "solve", "--help"],
}


def time_once(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):  # interleaved: a noisy moment hits every case alike
        for name, cmd in CASES.items():
            times[name].append(time_once(cmd))
    base = statistics.median(times["python -c pass"])
    torch_t = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':<28} {'median s':>9} {'× python':>9} {'× import torch':>15}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<28} {m:9.3f} {m / base:9.2f} {m / torch_t:15.2f}")


if __name__ == "__main__":
    main()
