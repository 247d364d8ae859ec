"""The index of a workspace on a network file system is opened with SQLite's rollback journal, not its write-ahead
log (whose shared memory no two machines share). The mount table is faked here: no network file system can be
mounted on the test machine, so what SQLite does over a real NFS mount is not exercised."""

import logging
import sqlite3

import pytest

import core.filesystems as fs
from assets.workspace import Workspace


@pytest.fixture()
def mounts(monkeypatch, tmp_path):
    """A mount table with tmp_path/nas as an NFS mount and tmp_path/nas/scratch a local one inside it."""
    table = ((str(tmp_path / "nas" / "scratch"), "ext4"), (str(tmp_path / "nas"), "nfs4"), ("/", "ext4"))
    monkeypatch.setattr(fs, "_mounts", lambda: table)
    (tmp_path / "nas" / "scratch").mkdir(parents=True)
    return tmp_path


def test_the_longest_mount_point_holding_a_path_decides(mounts):
    assert fs.filesystem_type(mounts / "nas" / "studio" / "not-yet") == "nfs4"      # nearest existing parent
    assert fs.on_network_fs(mounts / "nas") == "nfs4"
    assert fs.filesystem_type(mounts / "nas" / "scratch" / "ws") == "ext4"
    assert fs.on_network_fs(mounts / "nas" / "scratch") is None
    assert fs.on_network_fs(mounts / "nasty") is None                               # a prefix is no parent


def test_an_index_on_nfs_uses_the_rollback_journal_and_says_so(mounts, caplog):
    with caplog.at_level(logging.WARNING):
        ws = Workspace.init(mounts / "nas" / "studio")
        with ws.write() as con:
            con.execute("INSERT INTO actors(id, name, created) VALUES ('jane', 'Jane', '2026-12-05')")
        with ws.read() as con:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert con.execute("SELECT name FROM actors WHERE id='jane'").fetchone()[0] == "Jane"
    assert not (ws.root / "doppel.sqlite-wal").exists()
    said = [r.getMessage() for r in caplog.records if "network file system (nfs4)" in r.getMessage()]
    assert len(said) == 1 and "rollback journal" in said[0]
    local = Workspace.init(mounts / "nas" / "scratch" / "ws")
    with local.read() as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_wal_index_moved_onto_nfs_is_turned_to_the_rollback_journal(mounts, monkeypatch):
    ws = Workspace.init(mounts / "nas" / "scratch" / "ws")            # local: WAL
    con = sqlite3.connect(ws.index_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    monkeypatch.setattr(fs, "_mounts", lambda: ((str(mounts / "nas"), "nfs4"), ("/", "ext4")))
    with ws.read() as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
