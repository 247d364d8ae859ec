"""A quiet command line: the C++ log lines of MediaPipe (absl / glog / TensorFlow Lite), NVIDIA warp's
"no CUDA driver" warning and faiss's note on a small clustering (COLMAP's vocabulary tree) are dropped from
stderr unless ``--debug`` is given.

Those lines are written by native code straight to file descriptor 2, so Python's logging cannot hold them
back. ``native_stderr_filter`` points fd 2 at a pipe for the duration of a command; a thread copies every
line to the real stderr except the known noise (``NOISE``). Lines of Python code (errors, warnings,
progress) pass unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

# Lines native libraries print that say nothing to a Doppel user (each anchored at the start of a line).
NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] "       # absl/glog INFO and WARNING lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"
    rb"|WARNING clustering \d+ points to \d+ centroids: please provide at least)")   # faiss, in COLMAP's vocabulary


def quiet_native_logs(debug: bool) -> None:
    """Ask native libraries for fewer log lines (before they load); ``debug`` leaves their defaults."""
    if debug:
        return
    os.environ.setdefault("GLOG_minloglevel", "2")       # glog: errors only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TensorFlow Lite: errors only
    os.environ.setdefault("WARP_QUIET", "1")


def filter_lines(data: bytes) -> bytes:
    """``data`` (whole lines) without the lines that match ``NOISE``."""
    return b"".join(line for line in data.splitlines(keepends=True) if not NOISE.match(line))


@contextlib.contextmanager
def native_stderr_filter(enabled: bool = True) -> Iterator[None]:
    """Inside the block, drop ``NOISE`` lines written to fd 2 (by any code, native included). A no-op when
    not ``enabled`` or when sys.stderr is not fd 2 (under pytest's capture, for example)."""
    try:
        real = enabled and sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved), name="doppel-stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)           # closes the pipe's last write end held by this process
        pump.join(timeout=2.0)      # a child that still holds the pipe open must not hang the exit
        if not pump.is_alive():     # else the pump still writes to it: leave it open (never reuse the number)
            os.close(saved)


def _pump(read_end: int, out_fd: int) -> None:
    """Copy whole lines from ``read_end`` to ``out_fd`` without the noise, until end of file."""
    pending = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(read_end, 1 << 16):
            pending += chunk
            head, sep, pending = pending.rpartition(b"\n")
            if sep:
                _write_all(out_fd, filter_lines(head + sep))
        if pending:
            _write_all(out_fd, filter_lines(pending))
    os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
