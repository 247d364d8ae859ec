"""Progress inside COLMAP's long steps, read from COLMAP's own log lines.

A pycolmap step is one C++ call with no progress callback: the features of a 96-photo rig take a minute and its
matching four (on two threads), and the progress bar stood still through each. COLMAP logs its progress (glog
INFO lines such as ``Processed file [12/96]``, ``Processing image [41/96]``, ``Processing block [1/2, 2/2]``), so
in COLMAP's child process (`capture.colmap_process`) file descriptor 2 is pointed at a pipe for the duration of a
step, and a thread turns those lines into `Tick`s. Every other line is copied to the real stderr when its severity
is at least what ``GLOG_minloglevel`` asked for (the command line asks for errors only unless ``--debug``), so
what reaches the terminal is what reached it before. A COLMAP whose lines read otherwise gives no ticks: the bar
then moves from step to step as it did before. The module needs pycolmap and the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# "I20261207 20:41:57.609781 140354454025920 pairing.cc:333] Processing image [1/8]"
_GLOG = re.compile(rb"^([IWEF])(?:\d{4}){1,2} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.\-/]+:\d+\] ")
_PROGRESS = re.compile(rb"(Processed file|Indexing image|Processing image|Processing block) "
                       rb"\[(\d+)/(\d+)(?:, (\d+)/(\d+))?\]")
_WHAT = {b"Processed file": "features", b"Indexing image": "indexing", b"Processing image": "matching",
         b"Processing block": "matching"}
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


@dataclass(frozen=True)
class Tick:
    """One step of COLMAP's progress. what: "features" (a photo's SIFT features extracted), "indexing" (a photo
    indexed by its visual words) or "matching" (a photo's most alike matched under retrieval; a block of pairs under
    exhaustive matching); done of total such units, done counted from 1 as COLMAP starts each."""

    what: str
    done: int
    total: int


def parse_tick(line: bytes) -> Tick | None:
    """The `Tick` a glog line of COLMAP's reports, or None. An exhaustive block ``[i/B, j/B]`` is unit
    (i - 1) * B + j of B * B."""
    head = _GLOG.match(line)
    found = _PROGRESS.match(line, head.end()) if head else None
    if not found:
        return None
    label, done, total, sub, subtotal = found.groups()
    if sub is None:
        return Tick(_WHAT[label], int(done), int(total))
    return Tick(_WHAT[label], (int(done) - 1) * int(subtotal) + int(sub), int(total) * int(subtotal))


def passes(line: bytes, min_level: int) -> bool:
    """Whether a line goes on to the real stderr: a glog line at ``min_level`` or above (0 INFO ... 3 FATAL);
    any line that is not glog's (a Python traceback, faiss's notes) always."""
    head = _GLOG.match(line)
    return head is None or _SEVERITY[head.group(1)] >= min_level


@contextlib.contextmanager
def colmap_ticks(on_tick: Callable[[Tick], None]) -> Iterator[None]:
    """Inside the block, COLMAP's progress lines become calls of ``on_tick`` (from a reader thread); fd 2 is a pipe
    read by that thread, which copies on the lines `passes` lets through. For COLMAP's child process only: it
    turns pycolmap's INFO logging on for the block and points the process's fd 2 elsewhere."""
    import pycolmap

    min_level = _min_level()
    saved_level, saved_to_stderr = pycolmap.logging.minloglevel, pycolmap.logging.logtostderr
    saved_fd = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_read, args=(read_end, saved_fd, min_level, on_tick),
                              name="doppel-colmap-log", daemon=True)
    reader.start()
    pycolmap.logging.logtostderr = True
    pycolmap.logging.minloglevel = 0
    try:
        yield
    finally:
        pycolmap.logging.minloglevel, pycolmap.logging.logtostderr = saved_level, saved_to_stderr
        os.dup2(saved_fd, 2)        # the pipe's last write end closes: the reader sees its end
        reader.join(timeout=5)
        os.close(saved_fd)


def _min_level() -> int:
    """The severity the environment asked glog for (``GLOG_minloglevel``; 0, INFO, when unset or unreadable)."""
    try:
        return int(os.environ.get("GLOG_minloglevel", "0"))
    except ValueError:
        return 0


def _read(read_end: int, out_fd: int, min_level: int, on_tick: Callable[[Tick], None]) -> None:
    """The reader thread: whole lines from the pipe until it closes; ticks reported, passing lines copied on."""
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                _route(line + b"\n", out_fd, min_level, on_tick)
    if pending:
        _route(pending, out_fd, min_level, on_tick)


def _route(line: bytes, out_fd: int, min_level: int, on_tick: Callable[[Tick], None]) -> None:
    tick = parse_tick(line)
    if tick is not None:
        on_tick(tick)
    if passes(line, min_level):
        os.write(out_fd, line)
