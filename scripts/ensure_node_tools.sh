#!/usr/bin/env bash
# The tests check what Doppel writes with two tools from the npm registry, run by Node.js or in the browser: the
# Khronos glTF-Validator (every kind of .glb) and axe-core (the accessibility of every kind of HTML page). Install
# Node.js when missing and we are root (otherwise stop with the exact command to run), then the tools, pinned,
# into DEST (default .venv/node-tools; `make clean` removes it with the venv).
set -euo pipefail
TOOLS=("gltf-validator@2.0.0-dev.3.10" "axe-core@4.14.1")
DEST="${1:-.venv/node-tools}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "node/npm missing (the tests run the glTF validator and axe-core with them): installing Debian's nodejs and npm"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "error: the tests need Node.js and npm (the Khronos glTF-Validator and axe-core come from npm). Run:" >&2
        echo "    sudo apt-get install -y nodejs npm" >&2
        exit 1
    fi
fi
missing=()
for tool in "${TOOLS[@]}"; do
    name="${tool%@*}"
    version="${tool##*@}"
    pkg="$DEST/node_modules/$name/package.json"
    if ! { [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; }; then
        missing+=("$tool")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
mkdir -p "$DEST"
echo "installing ${missing[*]} (npm) into $DEST"
for attempt in 1 2 3; do           # a registry hiccup should not fail a fresh machine's setup
    if npm install --prefix "$DEST" --no-audit --no-fund --no-save --silent "${TOOLS[@]}"; then
        exit 0
    fi
    echo "npm install failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
done
echo "error: could not install ${TOOLS[*]} from the npm registry; check the network, then run make setup again" >&2
exit 1
