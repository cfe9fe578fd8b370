"""The `ocdl solve` options of the fastest E-MSA ternary CIFAR-10 step in a table printed by
``step_overhead.py --net cifar10`` (used by gpu_suite.sh's ``pick`` part).

The candidates are the graphed update in float32 (no options: the presets' default), bfloat16
autocast, channels-last images, both, and (with ``--allow-step``, given when the GPU tests of
``cuda_graph: step`` passed on the machine) the whole step as one graph, in float32 or bf16.
Printed: the options of the fastest one if it is at least ``--margin`` faster than the default,
else nothing (the default).

    python benchmarks/pick_cifar_options.py bench-cifar.txt --allow-step
"""
from __future__ import annotations

import argparse
import re

OPTIONS = {"E-MSA ternary (graph)": "",
           "E-MSA ternary (graph, bf16)": "--set run.amp=bf16",
           "E-MSA ternary (graph, NHWC)": "--set run.channels_last=true",
           "E-MSA ternary (graph, bf16, NHWC)": "--set run.amp=bf16 --set run.channels_last=true"}
STEP_OPTIONS = {"E-MSA ternary (graph step)": "--set cuda_graph=step",
                "E-MSA ternary (graph step, bf16)": "--set cuda_graph=step --set run.amp=bf16"}
DEFAULT = "E-MSA ternary (graph)"


def pick(lines: list[str], allow_step: bool, margin: float = 0.1) -> str:
    """Options of the fastest candidate row (``name  ms  ratio``) if it beats the default by
    ``margin``, else ""."""
    opts = {**OPTIONS, **(STEP_OPTIONS if allow_step else {})}
    ms: dict[str, float] = {}
    for line in lines:
        m = re.match(r"(.+?)\s+([0-9.]+)\s+([0-9.]+)$", line.rstrip())
        if m and m.group(1) in opts:
            ms[m.group(1)] = float(m.group(2))
    base = ms.get(DEFAULT)
    if not base:
        return ""
    best = min(ms, key=ms.__getitem__)
    return opts[best] if ms[best] < (1 - margin) * base else ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="the output of step_overhead.py --net cifar10")
    ap.add_argument("--allow-step", action="store_true",
                    help="consider cuda_graph: step (only once its GPU tests passed)")
    ap.add_argument("--margin", type=float, default=0.1,
                    help="how much faster than the default a candidate must be (0.1: 10 %%)")
    args = ap.parse_args(argv)
    with open(args.table, encoding="utf-8") as f:
        print(pick(f.readlines(), args.allow_step, args.margin))


if __name__ == "__main__":
    main()
