#!/usr/bin/env bash
# open3d needs the system library libusb-1.0. Install it when missing and we are root;
# otherwise stop with the exact command to run.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "libusb-1.0 missing (open3d needs it): installing with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
    exit 0
fi
echo "error: open3d needs the system library libusb-1.0, which is missing. Run:" >&2
echo "    sudo apt-get install -y libusb-1.0-0" >&2
exit 1
