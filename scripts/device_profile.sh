#!/usr/bin/env bash
# A short device call: where a 1024 px frame of the neural double spends its time, with torch.profiler's table of
# the G-buffer (benchmarks/render_breakdown.py --profile), on a model trained 5 steps from the kit with a student's
# output filter (speed does not depend on the weights); then the gpu-marked shot tests (the 60 frames/s goal at
# 1024 px). About two minutes on the machine; from the repository root:
#   run(command="bash scripts/device_profile.sh", carry=[".devkit"], timeout_s=240)
# Settings (environment): KIT (.devkit), DEVICE (cuda), SIZE (1024), PY (python3), SITE (/tmp/site), OUT,
# BIN_ITEMS (the rasterizer's bin-merging thresholds to time: 256,1024,4096,16384), PER_CALL (renders a model call
# to time a 16-frame shot with: 1,2,4,8), VIEWS (each stage's ms a view with this many drawn in one call: 8).
# Rehearsal without a GPU: DEVICE=cpu SIZE=256 PY=... KIT=... SITE=... OUT=... bash scripts/device_profile.sh
set -eu -o pipefail
KIT=${KIT:-.devkit}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-1024}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/whl/*.whl
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
model=$(mktemp -d)/model
"$PY" - "$KIT" "$model" "$SIZE" "$DEVICE" <<'PYEOF'
import sys
from pathlib import Path

import core  # noqa: F401 - Doppel's core before torch
from doppel.render_distil import STUDENT_OUTPUT_FILTER
from doppel.render_stage import TrainRequest, train_session

kit, out, size, device = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# a student's shape (drawn through its output filter), trained 5 steps
train_session(TrainRequest(kit / "capture" / "session", kit / "fit", out, ["ring03", "face01"], size,
                           iterations=5, device=device,
                           options={"checkpoint_every": 0, "output_filter": STUDENT_OUTPUT_FILTER}), out)
print("model:", out)
PYEOF
"$PY" benchmarks/render_breakdown.py --model "$model" --session "$KIT/capture/session" --size "$SIZE" \
    --device "$DEVICE" --profile --bin-items "${BIN_ITEMS:-256,1024,4096,16384}" --per-call "${PER_CALL:-1,2,4,8}" \
    --views "${VIEWS:-8}" \
    2>&1 | tee "$OUT/render_profile.txt"
# the gpu-marked shot tests: several renders a call like one at a time, and the 60 frames/s goal at 1024 px
"$PY" -m pytest -q -rP -p no:cacheprovider -m gpu tests/neural_render/test_shot_views.py \
    tests/neural_render/test_render_speed.py 2>&1 | tee "$OUT/pytest_speed.log" | tail -8
