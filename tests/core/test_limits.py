"""Resource limits: estimates before work, one-line refusals that say what, how much, the limit, the override."""

import pytest

import core.limits as limits
from core.limits import ResourceEstimate, ResourceLimitError, check_resources, format_bytes, format_seconds
from doppel.synthetic_capture import estimate_synthetic_capture

GB = 1e9


@pytest.fixture()
def machine(monkeypatch):
    """A machine with 16 GB of memory (10 GB available) and 50 GB of free disk."""
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: 10 * GB)
    monkeypatch.setattr(limits, "total_memory_bytes", lambda: 16 * GB)
    monkeypatch.setattr(limits, "free_disk_bytes", lambda path: 50 * GB)


def test_small_request_passes(machine, tmp_path):
    check_resources(estimate_synthetic_capture(16, 1024, frames=1), tmp_path)


@pytest.mark.parametrize(("args", "needle", "overridable"), [
    ({"n_cameras": 16, "size": 100000}, "of memory", False),               # 80 GB+ of rasterizer buffers
    ({"n_cameras": 16, "size": 256, "frames": 2000}, "would take", True),     # 14 h
    ({"n_cameras": 16, "size": 1024, "frames": 100000}, "free on the disk", False),   # 2 TB
    ({"n_cameras": 100000, "size": 1024}, "free on the disk", False),
])
def test_oversized_synthetic_capture_is_refused(machine, tmp_path, args, needle, overridable):
    est = estimate_synthetic_capture(**args)
    with pytest.raises(ResourceLimitError) as e:
        check_resources(est, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("capture synth:") and needle in msg
    assert ("--allow-large" in msg) == (needle != "free on the disk")
    if overridable:
        check_resources(est, tmp_path, allow_large=True)
    else:
        with pytest.raises(ResourceLimitError):
            check_resources(est, tmp_path, allow_large=True)


def test_memory_limit_names_amount_and_limit(machine, tmp_path):
    est = ResourceEstimate("thing", memory_bytes=9 * GB, disk_bytes=0, seconds=1)
    with pytest.raises(ResourceLimitError, match=r"thing: needs about 9\.0 GB of memory, 10\.0 GB available"):
        check_resources(est, tmp_path)
    check_resources(est, tmp_path, allow_large=True)   # under the 16 GB the machine has


def test_streaming_memory_does_not_grow_with_cameras_or_frames():
    one = estimate_synthetic_capture(2, 512, frames=1)
    many = estimate_synthetic_capture(200, 512, frames=500)
    assert many.memory_bytes == one.memory_bytes
    assert many.seconds > 100 * one.seconds and many.disk_bytes > 1000 * one.disk_bytes
    assert estimate_synthetic_capture(2, 2048).memory_bytes > estimate_synthetic_capture(2, 512).memory_bytes + 0.5 * GB


def test_real_machine_figures_are_positive(tmp_path):
    assert limits.available_memory_bytes() > 0 and limits.total_memory_bytes() >= limits.available_memory_bytes()
    assert limits.free_disk_bytes(tmp_path / "not" / "yet") > 0


@pytest.mark.parametrize(("fn", "value", "text"), [
    (format_seconds, 12, "12 s"), (format_seconds, 150, "2.5 min"), (format_seconds, 7200, "2.0 h"),
    (format_bytes, 2.5e6, "2.5 MB"), (format_bytes, 3e9, "3.0 GB"),
])
def test_formats(fn, value, text):
    assert fn(value) == text
