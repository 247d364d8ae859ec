import sqlite3

import pytest

from assets.workspace import INDEX_NAME, STAGE_FOLDERS, Workspace, WorkspaceError


def test_init_creates_index_and_folders_idempotently(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    for name in STAGE_FOLDERS:
        assert (ws.root / name).is_dir()
    with ws.connect() as con:
        con.execute("INSERT INTO actors(id, name, created) VALUES ('a1', 'Jane', '2026-01-01')")
    Workspace.init(tmp_path / "ws")  # second init keeps data
    with sqlite3.connect(ws.index_path) as con:
        assert con.execute("SELECT name FROM actors").fetchall() == [("Jane",)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Workspace.open(tmp_path / "ws").root == ws.root


def test_open_rejects_non_workspace(tmp_path):
    with pytest.raises(WorkspaceError, match=f"no {INDEX_NAME}"):
        Workspace.open(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.init(tmp_path / "file")
