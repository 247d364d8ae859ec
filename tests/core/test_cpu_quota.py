"""A container's CPU quota caps the threads Doppel's libraries start (core/cpu_quota.py). cgroup files are faked
here; the stop-55 note has a run in a real cgroup of 1 CPU (doppel fit 50.1 s -> 40.2 s on the 2-core VM)."""

from __future__ import annotations

import pytest

import core.cpu_quota as cq


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_smallest_along_the_path(tmp_path):
    _write(tmp_path / "cpu.max", "400000 100000\n")
    _write(tmp_path / "job" / "cpu.max", "150000 100000\n")
    _write(tmp_path / "job" / "task" / "cpu.max", "max 100000\n")
    assert cq.container_cpus(tmp_path, "0::/job/task\n") == 1.5
    assert cq.container_cpus(tmp_path, "0::/\n") == 4.0
    _write(tmp_path / "cpu.max", "max 100000\n")
    assert cq.container_cpus(tmp_path, "0::/\n") is None


def test_cgroup_v1_quota(tmp_path):
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cq.container_cpus(tmp_path, "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n") == 0.5
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")
    assert cq.container_cpus(tmp_path, "4:cpu,cpuacct:/docker/abc\n") is None
    assert cq.container_cpus(tmp_path / "nothing-here", "") is None


def test_threads_follow_the_quota_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(cq.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(cq, "container_cpus", lambda: 3.2)
    for var in cq.THREAD_VARIABLES:          # set then removed: monkeypatch then removes what limit_threads sets
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")                   # the user's choice stays
    assert cq.usable_cores() == 4 and cq.limit_threads() == 4
    assert cq.os.environ["OMP_NUM_THREADS"] == "2" and cq.os.environ["NUMBA_NUM_THREADS"] == "4"
    from core.prefetch import auto_workers

    assert auto_workers(limit=8) == 4
    monkeypatch.setattr(cq, "container_cpus", lambda: None)
    assert cq.usable_cores() == 64 and cq.limit_threads() is None


@pytest.mark.parametrize("text", ["garbage", "", "0::/missing/path"])
def test_unreadable_cgroup_text_limits_nothing(tmp_path, text):
    assert cq.container_cpus(tmp_path, text) is None
