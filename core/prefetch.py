"""Work on the next items of a stream in a background thread while the caller handles the current one.

A streamed pass over a plate (decode a frame, draw the double for it, then composite or detect) runs its steps one
after the other on one core. Most of the drawing is torch and most of the rest is OpenCV or MediaPipe, all of which
release the GIL, so drawing frame i + 1 in a second thread while the caller composites frame i uses a second core
(or keeps a GPU busy) without changing any result: each item's work is the same call on the same input, and the
results come back in the stream's order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")
R = TypeVar("R")


def prefetched(items: Iterable[T], fn: Callable[[T], R], depth: int = 2) -> Iterator[tuple[T, R]]:
    """Yield (item, fn(item)) for each item in order, fn running in one background thread up to ``depth`` items
    ahead of the caller (depth 0: no thread, fn runs in the caller's thread; the results are the same).

    fn must be safe to run beside the caller's own work on the items (it gets each item once, in order, from
    one thread). An exception raised by fn is raised here when its item is reached; closing the generator early
    (break, an exception in the caller) cancels the items not started and waits for the one running.
    The items themselves are drawn from ``items`` in the caller's thread, at most depth + 1 ahead."""
    if depth < 0:
        raise ValueError(f"prefetched: depth must be >= 0, got {depth}")
    if depth == 0:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="doppel-prefetch")
    pending: deque[tuple[T, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) > depth:
                head, fut = pending.popleft()
                yield head, fut.result()
        while pending:
            head, fut = pending.popleft()
            yield head, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
