#!/usr/bin/env bash
# The review-site tests drive Debian's Chromium with Playwright (pip; no `playwright install` download).
# Install it when missing and we are root; otherwise stop with the exact command to run.
set -euo pipefail
CHROMIUM="${DOPPEL_CHROMIUM:-/usr/lib/chromium/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "chromium missing (the browser tests need it): installing Debian's chromium with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "error: the review-site tests need Debian's chromium ($CHROMIUM), which is missing. Run:" >&2
echo "    sudo apt-get install -y chromium" >&2
exit 1
