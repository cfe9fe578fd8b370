#!/usr/bin/env bash
# One prepared GPU session for issue 6 (zoo accuracy and GPU speed), in parts that fit the device
# budget (about 15 minutes a session, at most 10 minutes a call). Data go in the ignored
# .gpu/datasets (mnist, fashion-mnist, cifar-10 as in ../shared/datasets); carry `.gpu`.
#
#   PARTS="pick+decode cifar-binary+cifar-ternary-sparse+tests" CIFAR_ARGS=auto DEADLINE_S=570 \
#     OUT=/some/dir bash benchmarks/gpu_suite.sh
#
# A session of 15 device minutes (a start costs about 30 s), two calls back to back: first
# `PARTS="pick+decode cifar-binary+cifar-ternary-sparse+tests" CIFAR_ARGS=auto DEADLINE_S=570`
# (pick times the CIFAR step in float32, bf16 and channels-last side by side and gives the
# fastest options to the two CIFAR runs, which then share the GPU, and with the GPU tests for
# their first minute or two; their schedules follow their time limit, so they anneal whatever
# speed they get), then with what is left `PARTS=bench-mnist` (MNIST step ratios, zoo samples/s
# of the MNIST and residual models, continuous E-MSA against Adam). That is what session 5 ran
# (experiments/HISTORY.md). Session 6 ran one CIFAR run alone for the whole 10-minute call,
# `PARTS="decode cifar-ternary-fc-sparse" CIFAR_MINUTES=10 CIFAR_MARGIN_S=10 DEADLINE_S=591`
# (timeout_s 598; 179 epochs in 523 s), then a 166-s probe of cutout. Session 12 ran
# `PARTS="pick+decode"` (61 s: the GPU tests of `cuda_graph: step` passed, its step table was lost
# to a crash of the plain-torch graph row, since made non-fatal), then the 10-minute call of the
# ternary net holding 1.95 % non-zero from half the run, annealed to it by 80 %
# (`PARTS="decode cifar-ternary-fc-sparse-nz" NZ_END=0.8`, 175 epochs in 536 s, 89.10 %), then
# all GPU tests (41 passed). Next sessions skip `pick` and give `--set cuda_graph=step` (the whole
# step as one graph: 0.83x the plain torch step where the graphed update takes 1.07x, about 10 %
# more epochs in a run) as the picked option, so that a failed capture is retried without it:
# `echo "--set cuda_graph=step" > /tmp/ocdl-cifar-args;` before the suite, and "auto" in
# CIFAR_ARGS. Then, in this order (one per session, each the whole 10-minute call, all with
# CIFAR_ARGS="--set data.split.train=50000 --set data.split.valid=0 auto": the run trains on all
# 50k training images, 11 % more than with the 5k valid split, and is judged on its final epoch):
# the binary net alone (`PARTS="decode cifar-binary"`), the ternary net of session 12 again with
# "--set keep_units=true" in CIFAR_ARGS (`PARTS="decode cifar-ternary-fc-sparse-nz" NZ_END=0.8`:
# no unit pruned to an all-zero row; +3.3, +6.25 and +4.7 points on the CPU stand-in, seeds 0,
# 1 and 2, sessions 14 and 15), the same
# with cutout (`PARTS="decode cifar-ternary-fc-sparse-nz-cutout" NZ_END=0.8`, keep_units too:
# without it cutout collapsed the stand-in, its units dying layer by layer), either at batch 400 (add
# "--set data.batch_size=400 --set lr=0.004" to CIFAR_ARGS: 1.5-1.7x the samples per second; the
# presets keep α per 100 samples; BatchNorm's Adam rate scaled with the batch), and the baselines
# at equal time on the binary net
# (`PARTS="decode cifar-binary+cifar-binaryconnect"`); with what is left, `PARTS=bench-mnist`.
#
# PARTS is a list of groups run one after another; the parts of a group (joined by "+") run at
# the same time, sharing the GPU (so a CIFAR run's time is an upper bound of its time alone).
# Parts: tests (pytest -m gpu), pick (the GPU tests of cuda_graph: step, then the CIFAR step
# variants; benchmarks/pick_cifar_options.py takes the fastest if it beats the presets' default
# by 10 %, cuda_graph: step only if its tests passed) and bench-mnist (above), bench
# (everything: step overhead on the MNIST and CIFAR nets, then bench-more: zoo samples/s,
# forward+costate, profiles of the CIFAR step in float32 and bf16, continuous E-MSA vs Adam),
# decode (decode CIFAR-10 into the array cache once, before runs share it), mnist / mnist-sparse (the 50-epoch MNIST runs of experiments/HISTORY.md),
# mnist20 (the 20-epoch recipes with schedules fitted to the run: sparse ternary, then binary),
# fashion (binary and ternary on Fashion-MNIST with flips, the recipe of experiments/HISTORY.md),
# cifar-binary, cifar-ternary (the paper's λ), cifar-ternary-sparse (the model
# cifar10-ternary-sparse: λ = 1e-6), cifar-ternary-fc-sparse (the model
# cifar10-ternary-fc-sparse),
# cifar-binaryconnect and cifar-bop (the baselines on the binary net, learning rates annealed
# to 0.02 of their start like E-MSA's BatchNorm rate), and each E-MSA run with "-cutout" added
# to its name (a CUTOUT×CUTOUT square, default 16, cut out on top of crop+flip), each ternary
# one with "-nz" added (E-MSA's nonzero_target: λ tuned to hold NZ_TARGET, default 1.95 %,
# of the weights non-zero, from the fraction NZ_START of the run on, default 0.5, annealed
# to it by NZ_END if set), or both
# ("-nz-cutout"): CIFAR-10
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
CUTOUT=${CUTOUT:-16}  # the side of the square the -cutout runs cut out (data.augment.cutout)
NZ_TARGET=${NZ_TARGET:-0.0195}  # the non-zero fraction the -nz runs hold (E-MSA nonzero_target)
NZ_START=${NZ_START:-0.5}  # from this fraction of the run on (nonzero_start: before it, the
# model's λ alone prunes the learning net, to about 2.1 % by then in session 6's run, so the
# ascent has little to do at the switch; held at the target from the first step, or switched
# on far above it, a CIFAR net is pruned abruptly and then hardly moves: experiments/HISTORY.md)
NZ_END=${NZ_END:-}  # if set, anneal the target from the net's non-zero fraction at NZ_START down
# to NZ_TARGET at this fraction of the run (nonzero_end), so that the switch prunes gradually
PICKED=${PICKED:-/tmp/ocdl-cifar-args}  # where the `pick` part writes the options it chose
CIFAR_ARGS=${CIFAR_ARGS:-}  # more options for the CIFAR runs, e.g. "--set run.amp=bf16"; the
# word "auto" in it: those that the `pick` part found fastest
# the CIFAR step variants timed side by side by `bench` and `pick` (';' between names)
CIFAR_VARIANTS="E-MSA binary (graph);E-MSA ternary (graph);BinaryConnect;torch Adam (bf16);\
E-MSA binary (graph, bf16);E-MSA ternary (graph, bf16);torch Adam (NHWC);torch Adam (bf16, NHWC);\
E-MSA ternary (graph, NHWC);E-MSA ternary (graph, bf16, NHWC);torch Adam (graph);\
E-MSA binary (graph step);E-MSA ternary (graph step);E-MSA ternary (graph step, bf16);\
BinaryConnect (graph step)"
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
epochs_of() {  # one line per epoch: epoch, test accuracy, non-zero fraction, wall time,
  # training time, dead units (output units whose ternary weight rows are all zero)
  python - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1] + "/log.jsonl"):
    r = json.loads(line)
    if r.get("type") == "epoch":
        print(r["epoch"], round(r.get("test_acc", float("nan")) * 100, 2),
              round(r.get("nonzero", 1.0) * 100, 2), round(r["time"], 1),
              round(r.get("train_time", float("nan")), 1),
              round(r.get("dead", float("nan")) * 100, 2))
PY
}

run() {  # run NAME TIMEOUT_S ARGS...: an ocdl solve whose summary and epochs go to $OUT/NAME.txt;
  # returns the solve's exit status
  local name=$1 limit=$2 rc; shift 2
  rm -rf "/tmp/ocdl-$name"
  # shellcheck disable=SC2086
  timeout -s INT "$limit" python -m ocdl solve "$@" --device "$DEVICE" $RUN_ARGS \
    --out "/tmp/ocdl-$name" --quiet \
    > "/tmp/ocdl-$name.txt" 2>&1
  rc=$?
  { echo "# exit status $rc; options: $*"; tail -12 "/tmp/ocdl-$name.txt"
    echo "# epoch test% nonzero% time_s train_time_s dead%"
    epochs_of "/tmp/ocdl-$name" 2>/dev/null; } \
    > "$OUT/$name.txt"
  return $rc
}

cifar() {  # cifar NAME MODEL SOLVER [SCHEDULE [AUGMENT]]: a CIFAR-10 run with crop+flip (or
  # AUGMENT) up to the deadline (SCHEDULE: options instead of CIFAR_SCHEDULE, for solvers
  # without E-MSA's α; "" keeps CIFAR_SCHEDULE); its
  # run.time_limit ends it at an evaluated epoch; Ctrl-C 40 s later is the safety net. The word
  # "auto" in CIFAR_ARGS stands for the options the `pick` part chose. Should the run fail with
  # CIFAR_ARGS and enough time be left, it runs again without them (with "auto": without the
  # picked ones, keeping the rest; both attempts in NAME.txt).
  # The run's log, summary and resolved config come back as NAME.tar.gz.
  local name=$1 left args=$CIFAR_ARGS t0=$SECONDS schedule=${4:-$CIFAR_SCHEDULE}
  local augment=${5:-"{crop: 4, flip: true}"} retry=""
  if [[ $args == *auto* ]]; then  # the picked options; a retry keeps the other ones
    retry=${args//auto/}; args=${args//auto/$(cat "$PICKED" 2>/dev/null)}
  fi
  left=$(( DEADLINE_S - CIFAR_MARGIN_S - (SECONDS - T0) ))
  (( left > CIFAR_MINUTES * 60 )) && left=$(( CIFAR_MINUTES * 60 ))
  if (( left < 100 )); then echo "$name: only $left s left, not run" > "$OUT/$name.txt"; return; fi
  # shellcheck disable=SC2086
  if ! run "$name" "$left" "$2" --solver "$3" --epochs 500 $schedule \
      --set "data.augment=$augment" --set run.eval_every=3 \
      --set "run.time_limit=$(( left - 40 ))" $args && [[ $args != "$retry" ]] &&
      (( left - (SECONDS - t0) >= 150 )); then
    mv "$OUT/$name.txt" "/tmp/$name-first.txt"
    CIFAR_ARGS=$retry cifar "$@"
    cat "/tmp/$name-first.txt" >> "$OUT/$name.txt"
    return
  fi
  tar -czf "$OUT/$name.tar.gz" -C /tmp --exclude='*.pt' "ocdl-$name" 2>/dev/null
  recalibrated "$name"
  amp_checked "$name"
}

bounded() {  # bounded SECONDS CMD...: CMD under timeout, with a line saying so if the limit
  # stopped it (else its output would just end)
  timeout "$@"; local rc=$?
  (( rc == 124 )) && echo "# stopped by its ${1}-second limit"
  return $rc
}

amp_checked() {  # amp_checked NAME: how far bf16 autocast and TF32 (the runs' default) take M
  # from strict float32 on the final network of run NAME, with this GPU's kernels
  # (tools/amp_error.py; bf16 on the CPU stand-in: 6-10 % a batch, and E-MSA ternary proved
  # sensitive to such noise: experiments/HISTORY.md), appended to NAME.txt if the deadline leaves time
  local p left
  for p in tf32 bf16; do
    left=$(( DEADLINE_S - (SECONDS - T0) - 5 ))
    (( left > 40 )) && left=40
    (( left < 15 )) && return
    { echo "# tools/amp_error.py --precision $p"
      bounded "$left" python tools/amp_error.py "/tmp/ocdl-$1" --precision "$p" --batches 25 \
        --device "$DEVICE" 2>&1 | tail -32; } >> "$OUT/$1.txt"
  done
}

recalibrated() {  # recalibrated NAME: the final network of run NAME on the test set again, with
  # its BatchNorm statistics recomputed on the clean training images (ocdl evaluate
  # --recalibrate-bn), appended to NAME.txt if the deadline leaves the time
  local left=$(( DEADLINE_S - (SECONDS - T0) - 5 ))
  (( left > 60 )) && left=60
  (( left < 20 )) && return
  { echo "# ocdl evaluate --recalibrate-bn"
    bounded "$left" python -m ocdl evaluate "/tmp/ocdl-$1" --recalibrate-bn --device "$DEVICE" \
      2>&1 | tail -6; } >> "$OUT/$1.txt"
}

pick() {  # pick TABLE [--allow-step]: the options of the fastest E-MSA ternary CIFAR step in
  # step_overhead's TABLE if it beats the default by 10 % (benchmarks/pick_cifar_options.py),
  # into $PICKED
  python benchmarks/pick_cifar_options.py "$@" > "$PICKED"
  echo "CIFAR options picked: '$(cat "$PICKED")'" >> "$OUT/device.txt"
}

part() {
  case $1 in
    tests) timeout 150 python -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -8 \
             > "$OUT/gpu-tests.txt" ;;
    bench) { timeout 60 python benchmarks/step_overhead.py --device "$DEVICE"
             timeout 90 python benchmarks/step_overhead.py --device "$DEVICE" --net cifar10 \
               --only "$CIFAR_VARIANTS"
             part bench-more
           } > "$OUT/bench.txt" 2>&1 ;;
    bench-more) timeout 100 python benchmarks/zoo_throughput.py --device "$DEVICE"
                timeout 60 python benchmarks/zoo_throughput.py --device "$DEVICE" --amp \
                  --models cifar10-binary,cifar10-ternary,mnist-fc-ternary
                timeout 40 python benchmarks/forward_costate.py --device "$DEVICE" --rounds 20
                timeout 60 python benchmarks/profile_step.py --device "$DEVICE" --net cifar10 --top 12
                timeout 60 python benchmarks/profile_step.py --device "$DEVICE" --net cifar10 \
                  --top 12 --amp --nhwc
                timeout 60 python benchmarks/emsa_vs_adam.py --device "$DEVICE" --iters 100 ;;
    pick) local step=""  # cuda_graph: step is a candidate only once its GPU tests passed here
          CUBLAS_WORKSPACE_CONFIG=:4096:8 timeout 80 python -m pytest -m gpu -q -rs \
            -p no:cacheprovider \
            tests/solvers/test_gpu.py -k "graphed_step or does_not_synchronise" \
            > "$OUT/gpu-tests-step.txt" 2>&1 &&
            ! grep -qiE "failed|error|skipped" "$OUT/gpu-tests-step.txt" && step=--allow-step
          timeout 100 python benchmarks/step_overhead.py --device "$DEVICE" --net cifar10 \
            --only "$CIFAR_VARIANTS" > "$OUT/bench-cifar.txt" 2>&1
          pick "$OUT/bench-cifar.txt" $step ;;
    bench-mnist) { timeout 60 python benchmarks/step_overhead.py --device "$DEVICE"
                   timeout 100 python benchmarks/zoo_throughput.py --device "$DEVICE" --models \
                     mnist-fc-binary,mnist-fc-ternary,mnist-resnet,fashion-mnist-resnet
                   timeout 60 python benchmarks/emsa_vs_adam.py --device "$DEVICE" --iters 50
                 } > "$OUT/bench-mnist.txt" 2>&1 ;;
    decode) python -c "from ocdl.data.load import load_dataset; load_dataset('cifar-10')" ;;
    mnist) run mnist-ternary 240 mnist-fc-ternary --solver emsa-ternary \
             --epochs 50 --set "data.augment={crop: 2}" --set lr_decay=0.92
           run mnist-binary 240 mnist-fc-binary --solver emsa-binary --epochs 50 \
             --set "data.augment={crop: 2}" --set lr_decay=0.92 --set alpha_decay=0.9
           part mnist-sparse ;;
    mnist-sparse) run mnist-ternary-sparse 240 mnist-fc-ternary-sparse \
                    --solver emsa-ternary --epochs 50 --set lr_decay=0.92 ;;
    mnist20) run mnist20-ternary-sparse 120 mnist-fc-ternary-sparse \
               --solver emsa-ternary --epochs 20 --set alpha_end=0.077 --set lr_end=0.0155
             run mnist20-binary 120 mnist-fc-binary --solver emsa-binary \
               --epochs 20 --set "data.augment={crop: 2}" --set alpha_end=0.0052 \
               --set lr_end=0.0155 ;;
    fashion) for k in ternary binary; do
               if [[ $k == binary ]]; then a=0.0052; else a=0.077; fi
               run "fashion-$k" 240 "fashion-mnist-fc-$k" --solver "emsa-$k" \
                 --epochs 15 --set "data.augment={flip: true}" --set "alpha_end=$a" \
                 --set lr_end=0.0155
             done ;;
    cifar-binary) cifar cifar-binary cifar10-binary emsa-binary ;;
    cifar-ternary) cifar cifar-ternary cifar10-ternary emsa-ternary ;;
    cifar-ternary-sparse) cifar cifar-ternary-sparse cifar10-ternary-sparse \
                            emsa-ternary ;;
    cifar-ternary-fc-sparse) cifar cifar-ternary-fc-sparse \
                               cifar10-ternary-fc-sparse emsa-ternary ;;
    cifar-ternary*-nz|cifar-*-cutout)  # cifar-NAME with -nz (hold NZ_TARGET non-zero, ternary
      # nets) and/or -cutout (a CUTOUT square cut out on top of crop+flip), in that order
      local m=${1#cifar-} schedule="" augment=""
      if [[ $m == *-cutout ]]; then
        m=${m%-cutout}; augment="{crop: 4, flip: true, cutout: $CUTOUT}"
      fi
      if [[ $m == ternary*-nz ]]; then
        m=${m%-nz}; schedule="$CIFAR_SCHEDULE --set nonzero_target=$NZ_TARGET --set nonzero_start=$NZ_START"
        if [[ -n $NZ_END ]]; then schedule="$schedule --set nonzero_end=$NZ_END"; fi
      fi
      cifar "$1" "cifar10-$m" "emsa-${m%%-*}" "$schedule" "$augment" ;;
    cifar-binaryconnect) cifar cifar-binaryconnect cifar10-binary binaryconnect \
                           "--set lr=0.003 --set lr_end=0.02" ;;  # lr: the reference cifar10.py
    cifar-bop) cifar cifar-bop cifar10-binary bop "--set lr_end=0.02" ;;
    *) echo "unknown part '$1' (tests bench bench-more bench-mnist pick decode mnist mnist-sparse mnist20 fashion cifar-binary" \
         "cifar-ternary cifar-ternary-sparse cifar-ternary-fc-sparse cifar-binaryconnect cifar-bop," \
         "cifar-NAME-cutout for NAME in binary ternary ternary-sparse ternary-fc-sparse," \
         "cifar-NAME-nz for the ternary NAMEs, cifar-NAME-nz-cutout)" >&2
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
