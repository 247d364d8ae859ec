#!/usr/bin/env bash
# The glTF tests check the .glb files Doppel writes with the Khronos glTF-Validator (npm: gltf-validator), run by
# Node.js. Install Node.js when missing and we are root (otherwise stop with the exact command to run), then the
# validator, pinned, into DEST (default .venv/gltf-validator; `make clean` removes it with the venv).
set -euo pipefail
VERSION=2.0.0-dev.3.10
DEST="${1:-.venv/gltf-validator}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "node/npm missing (the glTF tests run the Khronos validator with them): installing Debian's nodejs and npm"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "error: the glTF tests need Node.js and npm (the Khronos glTF-Validator runs on them). Run:" >&2
        echo "    sudo apt-get install -y nodejs npm" >&2
        exit 1
    fi
fi
PKG="$DEST/node_modules/gltf-validator/package.json"
if [ -f "$PKG" ] && grep -q "\"version\": \"$VERSION\"" "$PKG"; then
    exit 0
fi
mkdir -p "$DEST"
echo "installing the Khronos glTF-Validator $VERSION (npm) into $DEST"
npm install --prefix "$DEST" --no-audit --no-fund --no-save --silent "gltf-validator@$VERSION"
