"""doppel.batch.cluster_checks: `doppel batch --address` on a cluster it cannot use says why in one line (an
artist's driver on a cluster another artist started: Ray's retry warnings then "Failed to connect", or SIGABRT)."""

import os

import pytest

from doppel.batch import cluster_checks as cc


def _session(tmp_path, monkeypatch, closed: bool):
    events = tmp_path / "ray" / "session_2026-12-06_02-44-05_1" / "logs" / "events"
    events.mkdir(parents=True)
    (tmp_path / "ray" / "session_latest").symlink_to(events.parent.parent)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    real = os.access
    monkeypatch.setattr(cc.os, "access", lambda p, m: not (closed and str(p).endswith("events")) and real(p, m))


def test_a_cluster_on_this_machine_whose_session_this_user_cannot_write_is_refused(tmp_path, monkeypatch):
    _session(tmp_path, monkeypatch, closed=True)
    for address in ("auto", "127.0.0.1:6379"):
        with pytest.raises(cc.ClusterError, match="Ray runs one user's drivers per machine"):
            cc.check_local_session(address)
    cc.check_local_session("ray://127.0.0.1:10001")          # Ray Client: the driver runs on the cluster
    cc.check_local_session("192.0.2.254:6379")                # another machine (TEST-NET-1, never this one)


def test_a_cluster_whose_session_this_user_may_write_is_let_through(tmp_path, monkeypatch):
    _session(tmp_path, monkeypatch, closed=False)
    cc.check_local_session("auto")


class _Ray:
    def __init__(self, said: bytes, fails: bool):
        self.said, self.fails = said, fails

    def init(self, address, **kwargs):
        os.write(2, self.said)                                  # as Ray's C++ core writes: to the descriptor
        if self.fails:
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}")


def test_a_refused_token_is_named_and_rays_retry_warnings_are_held_back(capfd):
    warning = b"[W gcs_client.cc:210] Failed to get cluster ID: Unauthenticated: InvalidAuthToken\n" * 30
    with pytest.raises(cc.ClusterError, match="RAY_AUTH_MODE=token and RAY_AUTH_TOKEN"):
        cc.connect(_Ray(warning, fails=True), "10.0.0.5:6379")
    with pytest.raises(cc.ClusterError, match=r"cannot connect to a Ray cluster \(Failed to connect"):
        cc.connect(_Ray(b"something else\n", fails=True), "10.0.0.5:6379")
    cc.connect(_Ray(b"retrying...\n", fails=False), "10.0.0.5:6379")
    os.write(2, b"after\n")                                     # the descriptor is this process's stderr again
    assert capfd.readouterr().err == "after\n"
