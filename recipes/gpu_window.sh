#!/usr/bin/env bash
# One lent-GPU window: CUDA correctness checks + CUDA benchmark (scripts/gpu_check.py), then the default
# model's training run (recipes/train_default.py) until the window's end. Results go to $OUT:
#   gpu_check.json, run.log, default.safetensors.part-* (join with `cat`), default.batch.jpg
# Env: TRAIN_MIN (minutes of training), INIT (continue from a checkpoint; STEP overrides the step it was
# saved at), SKIP_CHECK=1, STAGE=coarse or refine (refine: the refiner only, on the frozen coarse network;
# coarse: the coarse network only, refiner left as is: a
# third of the full step's time on a 2-core CPU; not yet measured on a GPU, where the profile printed at the
# start of training says whether the refiner's regions bound the full step), EMPTY=0.1 (share of composites
# without a person, train_default --empty; the tenth, CPU, window used 0.1), SIZE=448 (training frame size,
# train_default --size, default 512; the seventeenth, CPU, window trained at 448: models/README.md),
# FRAME_CUT=1 (train_default --frame-cut: head-and-shoulder crops pasted webcam-style too; FRAME_CUT_COVER=0.7
# raises their matte-cover cap, --frame-cut-cover, default 0.6), PHOTOS=0.40 (share of whole photos,
# --photos), WIDE=0.5 (share of 16:9 batches, --wide), OVERSAMPLE="with_mask=3" (space-separated KEY=WEIGHT
# pairs, each an --oversample), FOREGROUND=2 (--foreground: a cell inside the person costs that many background
# cells in the coarse alpha loss). The shipped model's CPU command, on a GPU:
#   SKIP_CHECK=1 INIT=models/default.safetensors STAGE=coarse EMPTY=0.1 SIZE=448 FRAME_CUT=1 PHOTOS=0.40 WIDE=0.5 \
#     OVERSAMPLE=with_mask=3 TRAIN_MIN=9 bash recipes/gpu_window.sh
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/ckpt
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())"
  if [ "${SKIP_CHECK:-0}" != 1 ]; then
    timeout 240 python3 scripts/gpu_check.py --out "$OUT/gpu_check.json" --time-budget "${CHECK_BUDGET:-150}"
    echo "gpu_check exit $?"
  fi
  run_args=()
  if [ -n "${INIT:-}" ]; then run_args=(--init "$INIT" ${STEP:+--step "$STEP"}); fi
  if [ "${FRAME_CUT:-0}" = 1 ]; then run_args+=(--frame-cut ${FRAME_CUT_COVER:+--frame-cut-cover "$FRAME_CUT_COVER"}); fi
  if [ -n "${PHOTOS:-}" ]; then run_args+=(--photos "$PHOTOS"); fi
  if [ -n "${WIDE:-}" ]; then run_args+=(--wide "$WIDE"); fi
  for pair in ${OVERSAMPLE:-}; do run_args+=(--oversample "$pair"); done
  if [ -n "${FOREGROUND:-}" ]; then run_args+=(--foreground "$FOREGROUND"); fi
  timeout "$(awk "BEGIN{print int(${TRAIN_MIN:-6} * 60 + 120)}")" python3 recipes/train_default.py --pack .carry/pack \
    --out /tmp/ckpt/default.safetensors --log /tmp/ckpt/train.jsonl --minutes "${TRAIN_MIN:-6}" "${run_args[@]}" \
    --stage "${STAGE:-all}" --empty "${EMPTY:-0}" --size "${SIZE:-512}"
  echo "train exit $?"
} 2>&1 | tee "$OUT/run.log"
if [ -f /tmp/ckpt/default.safetensors ]; then
  split -b 15000000 -d /tmp/ckpt/default.safetensors "$OUT/default.safetensors.part-"
  cp /tmp/ckpt/default.batch.jpg "$OUT/" 2>/dev/null || true
  sha256sum /tmp/ckpt/default.safetensors | tee -a "$OUT/run.log"
fi
ls -la "$OUT"
