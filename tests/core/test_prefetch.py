"""core.prefetch: the next items' work in a background thread, results in order, errors where they belong."""

import threading
import time

import pytest

from core.prefetch import prefetched


def test_results_come_in_order_and_equal_the_one_thread_ones():
    def slow_square(x):                       # later items finish first if they ran out of order
        time.sleep(0.002 * (10 - x))
        return x * x, threading.current_thread().name

    ahead = list(prefetched(range(10), slow_square, depth=3))
    inline = list(prefetched(range(10), slow_square, depth=0))
    assert [(i, r[0]) for i, r in ahead] == [(i, r[0]) for i, r in inline] == [(i, i * i) for i in range(10)]
    assert {r[1] for _, r in ahead} == {"doppel-prefetch_0"}            # drawn in the background thread
    assert {r[1] for _, r in inline} == {threading.current_thread().name}


def test_work_runs_ahead_of_the_caller():
    started = []

    def record(x):
        started.append(x)
        return x

    it = prefetched(range(10), record, depth=2)
    assert next(it) == (0, 0)
    time.sleep(0.05)
    assert started[:3] == [0, 1, 2]            # items 1 and 2 taken up while the caller held item 0
    assert list(it)[-1] == (9, 9)


def test_an_error_is_raised_at_its_item_and_the_thread_stops():
    def fail_at_3(x):
        if x == 3:
            raise RuntimeError("bad frame 3")
        return x

    seen = []
    with pytest.raises(RuntimeError, match="bad frame 3"):
        for i, _ in prefetched(range(10), fail_at_3, depth=2):
            seen.append(i)
    assert seen == [0, 1, 2]
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("doppel-prefetch")]


def test_leaving_early_cancels_what_was_not_started():
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.01)
        return x

    gen = prefetched(range(100), slow, depth=4)
    for i, _ in gen:
        if i == 1:
            break
    gen.close()
    assert len(calls) <= 7 and not [t for t in threading.enumerate() if t.name.startswith("doppel-prefetch")]
    with pytest.raises(ValueError, match="depth must be >= 0"):
        list(prefetched([1], slow, depth=-1))


def test_several_workers_give_the_one_thread_results_in_order():
    def slow_square(x):
        time.sleep(0.003 * ((7 * x) % 5))     # out-of-order finishing across the workers
        return x * x, threading.current_thread().name

    many = list(prefetched(range(20), slow_square, depth=2, workers=3))
    assert [(i, r[0]) for i, r in many] == [(i, i * i) for i in range(20)]
    assert len({r[1] for _, r in many}) > 1                      # more than one thread did the work
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(prefetched([1], slow_square, workers=0))


def test_several_workers_run_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def held(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.03)
        with lock:
            running[0] -= 1
        return x

    assert [i for i, _ in prefetched(range(8), held, depth=1, workers=4)] == list(range(8))
    assert peak[0] == 4                       # depth 1 still keeps all four workers busy


def test_auto_workers_is_the_cores_within_the_limit():
    from core.prefetch import auto_workers

    assert 1 <= auto_workers() <= 8 and auto_workers(limit=1) == 1
