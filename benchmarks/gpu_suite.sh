#!/usr/bin/env bash
# One prepared GPU session: GPU tests, side-by-side benchmarks and a short full-MNIST E-MSA run.
# Usage on the device machine (data copied into the ignored .gpu/datasets):
#   OUT=/some/dir bash benchmarks/gpu_suite.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 OCDL_DATA="$PWD/.gpu/datasets" OCDL_OFFLINE=1
OUT=${OUT:-/tmp/ocdl-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/device.txt"
timeout 90 python -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -8 | tee "$OUT/gpu-tests.txt"
python benchmarks/forward_costate.py --device cuda --rounds 20 2>&1 | tee "$OUT/forward_costate.txt"
python benchmarks/step_overhead.py --device cuda 2>&1 | tee "$OUT/step_overhead.txt"
timeout ${RUN_TIMEOUT:-240} python -m ocdl solve models/mnist-fc-ternary.yaml \
  --solver emsa-ternary --epochs ${EPOCHS:-8} --device cuda --set cuda_graph=true --out /tmp/ocdl-gpu-run --quiet \
  2>&1 | tail -20 | tee "$OUT/mnist-ternary.txt"
grep '"type": "epoch"' /tmp/ocdl-gpu-run/log.jsonl > "$OUT/mnist-epochs.jsonl"
cp /tmp/ocdl-gpu-run/summary.json "$OUT/mnist-summary.json"
ls "$OUT"
