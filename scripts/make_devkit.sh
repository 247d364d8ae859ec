#!/usr/bin/env bash
# Remake the device kit (.devkit/) from nothing, as it was made on 2026-12-03 (docs/device.md): a 384 px Cycles
# capture of the virtual actor and its Doppel fit (silhouette weight 3, frame 000), the same capture at 1024 px,
# then scripts/device_kit.py. About 50 minutes on 2 cores (Cycles 5 + 30 min, the fit ~10 min); each step is
# skipped when its output is already there, so the script can be run again after an interruption.
#   bash scripts/make_devkit.sh [WORK]       (WORK: where the captures and the fit go; default /tmp/devkit_work)
set -eu -o pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/devkit_work}
DOPPEL=${DOPPEL:-.venv/bin/doppel}
PY=${PY:-.venv/bin/python}
mkdir -p "$W"
synth() {   # synth SIZE OUT
    [ -f "$2/session/calibration.json" ] || "$DOPPEL" capture synth --renderer cycles --cameras 16 --size "$1" \
        --samples 16 --frames 4 --seed 0 --out "$2"
}
synth 384 "$W/cyc384"
[ -f "$W/ingest/manifest.json" ] || "$DOPPEL" capture ingest "$W/cyc384/session" --out "$W/ingest"
[ -f "$W/fit3/fit_mesh.ply" ] || "$DOPPEL" fit "$W/cyc384/session" --landmarks "$W/ingest" --out "$W/fit3" \
    --frame 000 --silhouette-weight 3
synth 1024 "$W/cyc1024"
"$PY" scripts/device_kit.py --capture "$W/cyc1024" --fit "$W/fit3"
