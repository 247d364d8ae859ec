"""Work on the next items of a stream in background threads while the caller handles the current one.

A streamed pass over a plate (decode a frame, draw the double for it, then composite or detect) runs its steps one
after the other on one core. Most of the drawing is torch and most of the rest is OpenCV or MediaPipe, all of which
release the GIL, so drawing frame i + 1 (and i + 2, ... with more workers) in background threads while the caller
composites frame i uses more cores (or keeps a GPU busy) without changing any result: each item's work is the same
call on the same input, and the results come back in the stream's order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["prefetched", "auto_workers"]

T = TypeVar("T")
R = TypeVar("R")


def auto_workers(limit: int = 8) -> int:
    """Background threads for a streamed pass: the cores this process may use (its affinity, capped by its
    container's CPU quota: `core.cpu_quota`), in [1, limit] (the caller's own thread mostly waits for theirs)."""
    from core.cpu_quota import usable_cores

    return max(1, min(limit, usable_cores()))


def prefetched(items: Iterable[T], fn: Callable[[T], R], depth: int = 2, workers: int = 1
               ) -> Iterator[tuple[T, R]]:
    """Yield (item, fn(item)) for each item in order, fn running in ``workers`` background threads up to
    ``depth`` items ahead of the caller (depth 0: no thread, fn runs in the caller's thread; the results are the
    same). The items in flight are max(depth, workers), so every worker has one.

    fn must be safe to run beside the caller's own work on the items and, with workers > 1, beside itself on
    other items (each item goes to it once). An exception raised by fn is raised here when its item is reached;
    closing the generator early (break, an exception in the caller) cancels the items not started and waits
    for the ones running. The items themselves are drawn from ``items`` in the caller's thread, in order, at
    most that many + 1 ahead: a generator of items may keep state of its own (it runs in one thread)."""
    if depth < 0:
        raise ValueError(f"prefetched: depth must be >= 0, got {depth}")
    if workers < 1:
        raise ValueError(f"prefetched: workers must be >= 1, got {workers}")
    if depth == 0:
        for item in items:
            yield item, fn(item)
        return
    ahead = max(depth, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doppel-prefetch")
    pending: deque[tuple[T, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) > ahead:
                head, fut = pending.popleft()
                yield head, fut.result()
        while pending:
            head, fut = pending.popleft()
            yield head, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
