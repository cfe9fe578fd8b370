#!/usr/bin/env bash
# One prepared GPU session for issue 6 (zoo accuracy and GPU speed), in parts that fit the device
# budget (about 15 minutes a session, at most 10 minutes a call). Data go in the ignored
# .gpu/datasets (mnist, fashion-mnist, cifar-10 as in ../shared/datasets); carry `.gpu`.
#
#   PARTS="decode tests+cifar-binary+cifar-ternary-sparse bench" DEADLINE_S=485 \
#     OUT=/some/dir bash benchmarks/gpu_suite.sh
#
# A session of 15 device minutes (a start costs about 30 s): first `PARTS=bench` (about 2.5 min:
# ratios, profiles, bf16/NHWC speed), then at once, while the machine is warm, the CIFAR runs
# with what the bench showed pays, e.g. `PARTS="decode tests+mnist20+cifar-binary+cifar-ternary-sparse"
# DEADLINE_S=560 CIFAR_ARGS="--set run.amp=bf16 --set run.channels_last=true"` (the MNIST runs
# and tests take the first two minutes of GPU share; the CIFAR runs' schedules follow their
# time limit, so they anneal whatever speed they get).
#
# PARTS is a list of groups run one after another; the parts of a group (joined by "+") run at
# the same time, sharing the GPU (so a CIFAR run's time is an upper bound of its time alone).
# Parts: tests (pytest -m gpu), bench (forward+costate, step overhead on the MNIST and CIFAR
# nets, zoo samples/s, profiles of the CIFAR step in float32 and bf16, continuous E-MSA vs Adam), decode (decode CIFAR-10 into the array cache
# once, before runs share it), mnist / mnist-sparse (the 50-epoch MNIST runs of docs/RESULTS.md),
# mnist20 (the 20-epoch recipes with schedules fitted to the run: sparse ternary, then binary),
# fashion (binary and ternary on Fashion-MNIST with flips, the recipe of docs/RESULTS.md),
# cifar-binary, cifar-ternary (the paper's λ), cifar-ternary-sparse (models/cifar10-ternary-
# sparse.yaml: λ = 1e-6), cifar-ternary-fc-sparse (models/cifar10-ternary-fc-sparse.yaml): CIFAR-10
# with crop+flip, ended by run.time_limit at an evaluated epoch CIFAR_MARGIN_S + 40 seconds
# before DEADLINE_S (seconds after the script started), at most CIFAR_MINUTES minutes, with
# the schedules CIFAR_SCHEDULE and CIFAR_ARGS added to their options.
# Every part writes small text files under $OUT (the device tool brings back a few files only).
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 OCDL_DATA="$PWD/.gpu/datasets" OCDL_OFFLINE=1
OUT=${OUT:-/tmp/ocdl-gpu}
PARTS=${PARTS:-"decode tests+cifar-binary+cifar-ternary-sparse bench"}
DEADLINE_S=${DEADLINE_S:-540}
CIFAR_MARGIN_S=${CIFAR_MARGIN_S:-25}
CIFAR_MINUTES=${CIFAR_MINUTES:-10}
CIFAR_ARGS=${CIFAR_ARGS:-}  # more options for the CIFAR runs, e.g. "--set run.amp=bf16"
# the CIFAR runs' schedules, fitted to their time limit: 1 − α and the BatchNorm learning rate
# end at these fractions of their start (the MNIST recipes' 50 epochs of α decay 0.9 and
# lr decay 0.92 end at 0.005 and 0.016); CIFAR_SCHEDULE="--set alpha_decay=0.97 --set
# lr_decay=0.96" is session 3's per-epoch schedule
CIFAR_SCHEDULE=${CIFAR_SCHEDULE:-"--set alpha_end=0.005 --set lr_end=0.02"}
T0=$SECONDS
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu RUN_ARGS="--set data.limit=200 --epochs 2": a dry run here
RUN_ARGS=${RUN_ARGS:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/device.txt" 2>&1 ||
  echo "$DEVICE" > "$OUT/device.txt"
epochs_of() {  # one line per epoch: epoch, test accuracy, non-zero fraction, wall time
  python - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1] + "/log.jsonl"):
    r = json.loads(line)
    if r.get("type") == "epoch":
        print(r["epoch"], round(r.get("test_acc", float("nan")) * 100, 2),
              round(r.get("nonzero", 1.0) * 100, 2), round(r["time"], 1),
              round(r.get("train_time", float("nan")), 1))
PY
}

run() {  # run NAME TIMEOUT_S ARGS...: an ocdl solve whose summary and epochs go to $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  rm -rf "/tmp/ocdl-$name"
  # shellcheck disable=SC2086
  timeout -s INT "$limit" python -m ocdl solve "$@" --device "$DEVICE" $RUN_ARGS \
    --out "/tmp/ocdl-$name" --quiet \
    > "/tmp/ocdl-$name.txt" 2>&1
  { tail -12 "/tmp/ocdl-$name.txt"; echo "# epoch test% nonzero% time_s train_time_s"; epochs_of "/tmp/ocdl-$name"; } \
    > "$OUT/$name.txt"
}

cifar() {  # cifar NAME MODEL SOLVER: a CIFAR-10 run with crop+flip up to the deadline: its
  # run.time_limit ends it at an evaluated epoch; Ctrl-C 40 s later is the safety net
  local left=$(( DEADLINE_S - CIFAR_MARGIN_S - (SECONDS - T0) ))
  (( left > CIFAR_MINUTES * 60 )) && left=$(( CIFAR_MINUTES * 60 ))
  if (( left < 100 )); then echo "$1: only $left s left, not run" > "$OUT/$1.txt"; return; fi
  # shellcheck disable=SC2086
  run "$1" "$left" "$2" --solver "$3" --epochs 500 $CIFAR_SCHEDULE \
    --set "data.augment={crop: 4, flip: true}" --set run.eval_every=3 \
    --set "run.time_limit=$(( left - 40 ))" $CIFAR_ARGS
}

part() {
  case $1 in
    tests) timeout 150 python -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -8 \
             > "$OUT/gpu-tests.txt" ;;
    bench) { timeout 60 python benchmarks/step_overhead.py --device "$DEVICE"
             timeout 90 python benchmarks/step_overhead.py --device "$DEVICE" --net cifar10 \
               --only "E-MSA binary (graph),E-MSA ternary (graph),BinaryConnect,torch Adam (bf16),E-MSA binary (graph, bf16),E-MSA ternary (graph, bf16),torch Adam (NHWC),torch Adam (bf16, NHWC),E-MSA ternary (graph, NHWC),E-MSA ternary (graph, bf16, NHWC)"
             timeout 100 python benchmarks/zoo_throughput.py --device "$DEVICE"
             timeout 60 python benchmarks/zoo_throughput.py --device "$DEVICE" --amp \
               --models cifar10-binary,cifar10-ternary,mnist-fc-ternary
             timeout 40 python benchmarks/forward_costate.py --device "$DEVICE" --rounds 20
             timeout 60 python benchmarks/profile_step.py --device "$DEVICE" --net cifar10 --top 12
             timeout 60 python benchmarks/profile_step.py --device "$DEVICE" --net cifar10 --top 12 \
               --amp --nhwc
             timeout 60 python benchmarks/emsa_vs_adam.py --device "$DEVICE" --iters 100
           } > "$OUT/bench.txt" 2>&1 ;;
    decode) python -c "from ocdl.data.load import load_dataset; load_dataset('cifar-10')" ;;
    mnist) run mnist-ternary 240 models/mnist-fc-ternary.yaml --solver emsa-ternary \
             --epochs 50 --set "data.augment={crop: 2}" --set lr_decay=0.92
           run mnist-binary 240 models/mnist-fc-binary.yaml --solver emsa-binary --epochs 50 \
             --set "data.augment={crop: 2}" --set lr_decay=0.92 --set alpha_decay=0.9
           part mnist-sparse ;;
    mnist-sparse) run mnist-ternary-sparse 240 models/mnist-fc-ternary-sparse.yaml \
                    --solver emsa-ternary --epochs 50 --set lr_decay=0.92 ;;
    mnist20) run mnist20-ternary-sparse 120 models/mnist-fc-ternary-sparse.yaml \
               --solver emsa-ternary --epochs 20 --set alpha_end=0.077 --set lr_end=0.0155
             run mnist20-binary 120 models/mnist-fc-binary.yaml --solver emsa-binary \
               --epochs 20 --set "data.augment={crop: 2}" --set alpha_end=0.0052 \
               --set lr_end=0.0155 ;;
    fashion) for k in ternary binary; do
               if [[ $k == binary ]]; then a=0.0052; else a=0.077; fi
               run "fashion-$k" 240 "models/fashion-mnist-fc-$k.yaml" --solver "emsa-$k" \
                 --epochs 15 --set "data.augment={flip: true}" --set "alpha_end=$a" \
                 --set lr_end=0.0155
             done ;;
    cifar-binary) cifar cifar-binary models/cifar10-binary.yaml emsa-binary ;;
    cifar-ternary) cifar cifar-ternary models/cifar10-ternary.yaml emsa-ternary ;;
    cifar-ternary-sparse) cifar cifar-ternary-sparse models/cifar10-ternary-sparse.yaml \
                            emsa-ternary ;;
    cifar-ternary-fc-sparse) cifar cifar-ternary-fc-sparse \
                               models/cifar10-ternary-fc-sparse.yaml emsa-ternary ;;
    *) echo "unknown part '$1' (tests bench decode mnist mnist-sparse mnist20 fashion cifar-binary" \
         "cifar-ternary cifar-ternary-sparse cifar-ternary-fc-sparse)" >&2
       return 2 ;;
  esac
}

for group in $PARTS; do
  IFS=+ read -ra members <<< "$group"
  for m in "${members[@]}"; do part "$m" & done
  wait
  echo "group $group done at $(( SECONDS - T0 )) s" >> "$OUT/device.txt"
done
ls "$OUT"
