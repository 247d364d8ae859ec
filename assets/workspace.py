"""The asset-library workspace: a folder with an SQLite index beside the stage folders.

    WORKSPACE/
      doppel.sqlite      index: actors, consent records, assets and their lineage, audit log
      captures/ fits/ rigs/ animations/ exports/ renders/

`Workspace.init` creates it (idempotent); `Workspace.open` checks that a folder is one.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.errors import DoppelError

INDEX_NAME = "doppel.sqlite"
SCHEMA_VERSION = 1
STAGE_FOLDERS = ("captures", "fits", "rigs", "animations", "exports", "renders")
WORKSPACE_ENV = "DOPPEL_WORKSPACE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actors (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, actor_id TEXT NOT NULL REFERENCES actors(id), uses TEXT NOT NULL,
    production TEXT NOT NULL, expires TEXT NOT NULL, document_sha256 TEXT, granted TEXT NOT NULL,
    revoked TEXT, revoke_reason TEXT);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, actor_id TEXT, consent_id TEXT,
    sha256 TEXT, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lineage (
    child_id TEXT NOT NULL REFERENCES assets(id), parent_id TEXT NOT NULL REFERENCES assets(id),
    PRIMARY KEY (child_id, parent_id));
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
"""


class WorkspaceError(DoppelError):
    """A folder is not a Doppel workspace, or its index is unreadable or of another schema."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @staticmethod
    def init(root: str | os.PathLike) -> Workspace:
        """Create (or complete) a workspace at ``root``; existing content is left untouched."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root}: exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        for name in STAGE_FOLDERS:
            (root / name).mkdir(exist_ok=True)
        ws = Workspace(root)
        with ws.connect() as con:
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return ws

    @staticmethod
    def open(root: str | os.PathLike | None = None) -> Workspace:
        """Open the workspace at ``root`` (default: $DOPPEL_WORKSPACE, else the current folder)."""
        root = Path(root or os.environ.get(WORKSPACE_ENV) or Path.cwd())
        ws = Workspace(root)
        if not ws.index_path.is_file():
            raise WorkspaceError(f"{root}: not a Doppel workspace (no {INDEX_NAME}); run `doppel init {root}`")
        with ws.connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = row[0] if row else None
            raise WorkspaceError(f"{ws.index_path}: schema version {found}, expected {SCHEMA_VERSION}")
        return ws

    def connect(self) -> sqlite3.Connection:
        """A connection in WAL mode with a busy timeout, so several processes can share the index."""
        try:
            con = sqlite3.connect(self.index_path, timeout=30.0)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise WorkspaceError(f"{self.index_path}: cannot open the index ({e})") from e
        return con
