#!/usr/bin/env bash
# The GPU checks of issue 15 (the neural double), as one call on the device machine (docs/device.md). From the repository root:
#   run(command="bash scripts/device_checks.sh", carry=[".devkit"], timeout_s=600)
# with the kit made here first (scripts/device_kit.py). Everything it measures lands in $OUT (it comes back):
#   env.txt (GPU, driver, versions), neural_double.log, results.json, compare_half.png, render_breakdown.json,
#   pytest_gpu.log
# The benchmark runs first (its figures are the point), then where a frame's time goes (its trained model), then the
# gpu-marked tests in the time left.
# Settings (environment): KIT (.devkit), DEVICE (cuda), SIZE (1024), MINUTES (5: the issue's GPU budget),
# MEMBERS (1: models trained at once, drawn as their mean; 2 met the held-out goal on the CPU),
# DISTIL (0: off; N: the members then distilled into one model for at most N steps in what is left of MINUTES,
# and that model evaluated, drawn once: `doppel render distil`),
# LIMIT (570 s: the benchmark, then the tests, stop in time to bring $OUT back from a 600 s call),
# JITTER (4), OPTIONS (training options, NAME=VALUE ...: "crop=512 checkpoint_every=0", the CPU run's 128 px crops
# scaled to 1024 px, no checkpoints), PY (python3), SITE (/tmp/site), TESTS (the gpu-marked tests; "" = none).
# Rehearsal on a machine without a GPU: DEVICE=cpu SIZE=256 MINUTES=0.2 PY=... bash scripts/device_checks.sh
set -u -o pipefail
KIT=${KIT:-.devkit}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-1024}
MINUTES=${MINUTES:-5}
JITTER=${JITTER:-4}
MEMBERS=${MEMBERS:-1}
DISTIL=${DISTIL:-0}
OPTIONS=${OPTIONS-crop=512 checkpoint_every=0}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
TESTS=${TESTS-tests/neural_render/test_neural_double.py tests/neural_render/test_train_views.py tests/neural_render/test_raster.py tests/neural_render/test_shot_views.py tests/neural_render/test_render_speed.py}
LIMIT=${LIMIT:-570}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

[ -d "$KIT/whl" ] || { echo "no $KIT/whl: make the kit first (scripts/device_kit.py) and carry it"; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/whl/*.whl \
    || { echo "installing the kit's wheels failed"; exit 2; }
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
{
    date -u; uname -m; nproc
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import sys, numpy, torch; print(sys.version.split()[0], 'numpy', numpy.__version__, 'torch',
torch.__version__, 'cuda', torch.cuda.is_available())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stamp "neural double: $SIZE px, $MINUTES min on $DEVICE"
work=$(mktemp -d)
opts=()
for o in $OPTIONS; do opts+=(--option "$o"); done
timeout $(( LIMIT - ($(date +%s) - t0) )) "$PY" benchmarks/neural_double.py --capture "$KIT/capture" --fit "$KIT/fit" --fitter doppel \
    --novel-mesh "$KIT/novel" --device "$DEVICE" --size "$SIZE" --minutes "$MINUTES" --jitter "$JITTER" \
    --memory-size 0 --members "$MEMBERS" --distil "$DISTIL" --work "$work" "${opts[@]}" 2>&1 | tee "$OUT/neural_double.log" | grep -v "^  step" | tail -40
status=$?
cp "$work/results.json" "$OUT/" 2>/dev/null
# the previews at half size: a file that comes back is at most 16 MiB
"$PY" -c "import cv2, sys; im = cv2.imread(sys.argv[1]); cv2.imwrite(sys.argv[2], cv2.resize(im, None, fx=0.5, fy=0.5,
interpolation=cv2.INTER_AREA))" "$work/compare.png" "$OUT/compare_half.png" 2>/dev/null
stamp "benchmark exit $status$([ "$status" = 124 ] && echo ': stopped at the time limit')"

left=$(( LIMIT - ($(date +%s) - t0) ))
drawn="$work/model"
[ "$DISTIL" != 0 ] && drawn="$work/student"
if [ -f "$drawn/config.json" ] && [ "$left" -gt 150 ]; then
    stamp "where a frame's time goes, and a shot by renders a call (benchmarks/render_breakdown.py)"
    timeout 120 "$PY" benchmarks/render_breakdown.py --model "$drawn" --session "$KIT/capture/session" \
        --size "$SIZE" --device "$DEVICE" --per-call 1,8 2>&1 | tee "$OUT/render_breakdown.json" | tail -3
fi

left=$(( LIMIT - ($(date +%s) - t0) ))
if [ -n "$TESTS" ] && [ "$left" -gt 60 ]; then
    stamp "gpu-marked tests"
    # shellcheck disable=SC2086
    timeout "$left" "$PY" -m pytest -q -rP -p no:cacheprovider -m gpu $TESTS 2>&1 | tee "$OUT/pytest_gpu.log" | tail -15
elif [ -n "$TESTS" ]; then
    echo "gpu-marked tests not run: ${left} s left of ${LIMIT}" | tee "$OUT/pytest_gpu.log"
fi
stamp "done"
exit "$status"
