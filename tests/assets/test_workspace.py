import sqlite3

import pytest

from assets.workspace import INDEX_NAME, SCHEMA_VERSION, STAGE_FOLDERS, VIRTUAL_ACTOR_ID, Workspace, WorkspaceError


def test_init_creates_index_and_folders_idempotently(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    for name in STAGE_FOLDERS:
        assert (ws.root / name).is_dir()
    with ws.write() as con:
        con.execute("INSERT INTO actors(id, name, created) VALUES ('a1', 'Jane', '2026-01-01')")
    Workspace.init(tmp_path / "ws")  # second init keeps data
    con = sqlite3.connect(ws.index_path)
    try:
        assert con.execute("SELECT id FROM actors ORDER BY id").fetchall() == [("a1",), (VIRTUAL_ACTOR_ID,)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    assert Workspace.open(tmp_path / "ws").root == ws.root


def test_open_rejects_non_workspace_and_other_schema(tmp_path):
    with pytest.raises(WorkspaceError, match=f"no {INDEX_NAME}"):
        Workspace.open(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.init(tmp_path / "file")
    ws = Workspace.init(tmp_path / "ws")
    with ws.write() as con:
        con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with pytest.raises(WorkspaceError, match=f"schema version 1, expected {SCHEMA_VERSION}"):
        Workspace.open(ws.root)


def test_open_defaults_to_env_then_cwd(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    monkeypatch.setenv("DOPPEL_WORKSPACE", str(ws.root))
    assert Workspace.open().root == ws.root
    monkeypatch.delenv("DOPPEL_WORKSPACE")
    monkeypatch.chdir(ws.root)
    assert Workspace.open().root.resolve() == ws.root.resolve()


def test_write_rolls_back_on_error_and_closes(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(RuntimeError), ws.write() as con:
        con.execute("INSERT INTO actors(id, name, created) VALUES ('a1', 'Jane', '2026-01-01')")
        raise RuntimeError("boom")
    with ws.read() as con:
        assert con.execute("SELECT COUNT(*) FROM actors WHERE id='a1'").fetchone()[0] == 0
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        con.execute("SELECT 1")


def test_corrupt_index_is_one_clear_error(tmp_path):
    (tmp_path / INDEX_NAME).write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(WorkspaceError, match=f"{INDEX_NAME}: cannot open the index"):
        Workspace.open(tmp_path)


def test_a_user_who_cannot_write_the_index_reads_it(tmp_path, monkeypatch):
    """Read-only access: SQLite cannot make the WAL files such a user's connection needs, so with no writer
    about (no -wal file) the index file is read as it stands; while a writer has it open (its -wal file is
    there) the connection reads through it, and the file alone is never read then. Writing is refused."""
    import os

    import assets.workspace as workspace

    ws = Workspace.init(tmp_path / "ws")
    real_connect, real_access = sqlite3.connect, os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: not m & os.W_OK and real_access(p, m, *a, **k))

    def connect(db, *a, **k):                    # what SQLite answers that user: the WAL files cannot be made
        if "mode=ro" in str(db):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_connect(db, *a, **k)

    monkeypatch.setattr(workspace.sqlite3, "connect", connect)
    assert ws.read_only
    with ws.read() as con:
        assert con.execute("SELECT id FROM actors").fetchone()[0] == VIRTUAL_ACTOR_ID
    with pytest.raises(WorkspaceError, match=r"cannot write the workspace's index .* run it as a user who can"):
        with ws.write():
            pass
    (ws.root / f"{INDEX_NAME}-wal").write_bytes(b"")     # a writer's log: the file alone would miss what it holds
    with pytest.raises(WorkspaceError, match="cannot open the index read-only"):
        ws.read().__enter__()
    (ws.root / f"{INDEX_NAME}-wal").unlink()
    (ws.root / f"{INDEX_NAME}-journal").write_bytes(b"")   # a writer's rollback journal (an index on NFS): the same
    with pytest.raises(WorkspaceError, match="cannot open the index read-only"):
        ws.read().__enter__()
