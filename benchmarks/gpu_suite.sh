#!/usr/bin/env bash
# One prepared GPU session for issue 6 (zoo accuracy and GPU speed), in parts that fit the device
# budget (about 15 minutes a session, at most 10 minutes a call). Data go in the ignored
# .gpu/datasets (mnist, fashion-mnist, cifar-10 as in ../shared/datasets); carry `.gpu`.
#
#   PARTS="tests bench mnist" OUT=/some/dir bash benchmarks/gpu_suite.sh    # about 7 minutes
#   PARTS="cifar-ternary" CIFAR_MINUTES=9 OUT=... bash benchmarks/gpu_suite.sh  # a call of its own
#
# Parts: tests (pytest -m gpu), bench (forward+costate, step overhead, zoo samples/s, continuous
# E-MSA vs Adam), mnist (the three 50-epoch MNIST runs of docs/RESULTS.md), fashion (binary and
# ternary on Fashion-MNIST, without the shifts that hurt there), cifar-ternary / cifar-binary
# (CIFAR-10 with crop+flip, stopped by Ctrl-C after CIFAR_MINUTES, which checkpoints and
# summarises).
# Every part writes small text files under $OUT (the device tool brings back a few files only).
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 OCDL_DATA="$PWD/.gpu/datasets" OCDL_OFFLINE=1
OUT=${OUT:-/tmp/ocdl-gpu}
PARTS=${PARTS:-"tests bench mnist"}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/device.txt"

epochs_of() {  # one line per epoch: epoch, test accuracy, non-zero fraction, wall time
  python - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1] + "/log.jsonl"):
    r = json.loads(line)
    if r.get("type") == "epoch":
        print(r["epoch"], round(r.get("test_acc", float("nan")) * 100, 2),
              round(r.get("nonzero", 1.0) * 100, 2), round(r["time"], 1))
PY
}

run() {  # run NAME TIMEOUT_S ARGS...: an ocdl solve whose summary and epochs go to $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  timeout -s INT "$limit" python -m ocdl solve "$@" --device cuda --out "/tmp/ocdl-$name" --quiet \
    > "/tmp/ocdl-$name.txt" 2>&1
  { tail -12 "/tmp/ocdl-$name.txt"; echo "# epoch test% nonzero% time_s"; epochs_of "/tmp/ocdl-$name"; } \
    > "$OUT/$name.txt"
}

for part in $PARTS; do
  case $part in
    tests) timeout 120 python -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -8 \
             > "$OUT/gpu-tests.txt" ;;
    bench) { python benchmarks/forward_costate.py --device cuda --rounds 20
             python benchmarks/step_overhead.py --device cuda
             python benchmarks/zoo_throughput.py --device cuda
             python benchmarks/emsa_vs_adam.py --device cuda --iters 100; } > "$OUT/bench.txt" 2>&1 ;;
    mnist) for k in ternary binary; do
             run "mnist-$k" 240 "models/mnist-fc-$k.yaml" --solver "emsa-$k" --epochs 50 \
               --set "data.augment={crop: 2}" --set lr_decay=0.92
           done
           run mnist-ternary-sparse 240 models/mnist-fc-ternary-sparse.yaml --solver emsa-ternary \
             --epochs 50 --set lr_decay=0.92 ;;
    fashion) for k in ternary binary; do
               run "fashion-$k" 240 "models/fashion-mnist-fc-$k.yaml" --solver "emsa-$k" \
                 --epochs 50 --set lr_decay=0.92
             done ;;
    cifar-ternary|cifar-binary)
      k=${part#cifar-}
      run "cifar-$k" "$(( ${CIFAR_MINUTES:-9} * 60 ))" "models/cifar10-$k.yaml" \
        --solver "emsa-$k" --epochs 500 --set alpha_decay=0.98 --set lr_decay=0.97 \
        --set "data.augment={crop: 4, flip: true}" --set run.eval_every=5 ;;
    *) echo "unknown part '$part' (tests bench mnist fashion cifar-ternary cifar-binary)" >&2
       exit 2 ;;
  esac
done
ls "$OUT"
