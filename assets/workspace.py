"""The asset-library workspace: a folder with an SQLite index beside the stage folders.

    WORKSPACE/
      doppel.sqlite      index: actors, consent records, assets and their lineage, content hashes, audit log
      .doppel-manifest-key   the secret that signs manifests written here (0600; assets.manifest_signing)
      captures/ fits/ rigs/ animations/ exports/ renders/

`Workspace.init` creates it (idempotent); `Workspace.open` checks that a folder is one.

Several processes may work in one workspace at once. The index runs in WAL mode (readers never block
the writer), every connection has a busy timeout (a writer waits for another instead of failing), and
every change is one short ``BEGIN IMMEDIATE`` transaction (`Workspace.write`): the write lock is taken
before anything is read, so two writers never race on "read the audit head, then append after it".
A process killed mid-transaction leaves nothing behind: SQLite rolls the transaction back on the next
open. Connections are always closed (`Workspace.read` / `Workspace.write` are context managers).

A workspace may be shared by a team through one POSIX group (`doppel init DIR --group G`,
`assets.workspace_sharing`): opening it then makes this process's new files the group's (``core.group_sharing``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import DoppelError
from core.group_sharing import adopt_group_umask
from core.storage import new_temp_folder

INDEX_NAME = "doppel.sqlite"
SCHEMA_VERSION = 4
MIGRATABLE_FROM = (2, 3)  # older schemas this Doppel upgrades in place (additive changes only)
STAGE_FOLDERS = ("captures", "fits", "rigs", "animations", "exports", "renders")
WORKSPACE_ENV = "DOPPEL_WORKSPACE"
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction before giving up

# The built-in virtual actor (doppel.virtual_actor) is registered in every workspace: it is synthetic,
# so it needs no consent, and its assets say so.
VIRTUAL_ACTOR_ID = "virtual"
VIRTUAL_ACTOR_NAME = "Doppel virtual actor (synthetic, no real person)"
# What outputs record when a command ran outside any workspace on inputs without provenance: whose likeness
# it is was not established. Never an actor in a workspace; such outputs never pass a gate as synthetic.
UNKNOWN_ACTOR_ID = "unknown"
RESERVED_ACTOR_IDS = (VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL,                      -- UTC ISO-8601
    virtual INTEGER NOT NULL DEFAULT 0);        -- 1: synthetic actor, no consent needed
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY,
    actor_id TEXT NOT NULL REFERENCES actors(id),
    uses TEXT NOT NULL,                         -- comma-separated assets.consent.Use values
    production TEXT NOT NULL,
    expires TEXT NOT NULL,                      -- YYYY-MM-DD, last day the consent is valid
    document_sha256 TEXT,                       -- SHA-256 of the signed document (never the document)
    document_name TEXT,
    granted TEXT NOT NULL, granted_by TEXT NOT NULL,
    revoked TEXT, revoked_by TEXT, revoke_reason TEXT,
    timezone TEXT);                             -- schema 4: IANA zone of the expiry date; NULL before (UTC+14)
CREATE INDEX IF NOT EXISTS consents_actor ON consents(actor_id);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                         -- capture, landmarks, fit, rig, animation, export, render, ...
    path TEXT NOT NULL,                         -- relative to the workspace when inside it, else absolute
    sha256 TEXT NOT NULL,                       -- file hash, or folder hash (assets.hashing.path_sha256)
    actor_id TEXT NOT NULL REFERENCES actors(id),
    consent_id TEXT REFERENCES consents(id),    -- NULL only for the virtual actor
    use TEXT NOT NULL, production TEXT NOT NULL,
    created TEXT NOT NULL,
    audit_seq INTEGER NOT NULL REFERENCES audit(seq));
CREATE INDEX IF NOT EXISTS assets_actor ON assets(actor_id);
CREATE INDEX IF NOT EXISTS assets_consent ON assets(consent_id);
CREATE INDEX IF NOT EXISTS assets_path ON assets(path);
CREATE TABLE IF NOT EXISTS lineage (
    child_id TEXT NOT NULL REFERENCES assets(id),
    parent_id TEXT NOT NULL REFERENCES assets(id),
    PRIMARY KEY (child_id, parent_id));
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent_id);
-- Content identity (schema 3): every file / folder hash a gated run produced or read as an actor's likeness,
-- so an input is recognised by its content whatever its manifest says, or whether it still has one.
CREATE TABLE IF NOT EXISTS content (
    sha256 TEXT NOT NULL,                       -- a file's SHA-256, or a folder's data hash (assets.hashing)
    actor_id TEXT NOT NULL REFERENCES actors(id),
    asset_id TEXT REFERENCES assets(id),        -- the registered output it belongs to; NULL for a run's input
    path TEXT NOT NULL,                         -- where it was seen (as assets.path), '/FILE' inside a folder
    audit_seq INTEGER NOT NULL REFERENCES audit(seq),
    PRIMARY KEY (sha256, actor_id, path));
CREATE INDEX IF NOT EXISTS content_sha ON content(sha256);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,                    -- 1, 2, 3, ... without gaps
    record TEXT NOT NULL,                       -- canonical JSON (assets.audit)
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL);                        -- sha256(prev_hash + "\\n" + record)
-- Append-only inside SQLite: a deliberate attacker can drop these triggers, which `doppel audit verify`
-- then catches through the hash chain; they stop accidents and careless scripts.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class WorkspaceError(DoppelError):
    """A folder is not a Doppel workspace, or its index is unreadable or of another schema."""


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The workspace folder a command means: ``root``, else $DOPPEL_WORKSPACE, else the current folder."""
    return Path(root or os.environ.get(WORKSPACE_ENV) or Path.cwd())


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
        adopt_group_umask(root)
        _create_index_file(ws.index_path)
        with ws.write() as con:
            found = _schema_version(con)
            if found is not None and found != SCHEMA_VERSION and found not in MIGRATABLE_FROM:
                raise WorkspaceError(f"{ws.index_path}: schema version {found}, this Doppel needs {SCHEMA_VERSION}"
                                     " (no automatic migration; make a new workspace)")
            _create_schema(con)
            con.execute("INSERT OR IGNORE INTO actors(id, name, created, virtual) VALUES (?, ?, ?, 1)",
                        (VIRTUAL_ACTOR_ID, VIRTUAL_ACTOR_NAME, "1970-01-01T00:00:00+00:00"))
        _ensure_key(root)
        return ws

    def manifest_key(self):
        """The key that signs manifests written in this workspace (assets.manifest_signing; created if missing)."""
        from assets.manifest_signing import load_key

        return load_key(self.root, create=True)

    @staticmethod
    def open(root: str | os.PathLike | None = None) -> Workspace:
        """Open the workspace at ``root`` (default: $DOPPEL_WORKSPACE, else the current folder)."""
        root = resolve_root(root)
        ws = Workspace(root)
        if not ws.index_path.is_file():
            raise WorkspaceError(f"{root}: not a Doppel workspace (no {INDEX_NAME}); run `doppel init {root}`")
        adopt_group_umask(root)      # shared with a group: what this process makes is the group's too
        with ws.read() as con:
            found = _schema_version(con)
        if found in MIGRATABLE_FROM and not ws.read_only:
            with ws.write() as con:  # additive: new tables and columns; re-checked under the write lock
                if _schema_version(con) in MIGRATABLE_FROM:
                    _create_schema(con)
            found = SCHEMA_VERSION
        if found != SCHEMA_VERSION and not (ws.read_only and found in MIGRATABLE_FROM):   # a reviewer reads as is
            raise WorkspaceError(f"{ws.index_path}: schema version {found}, expected {SCHEMA_VERSION}")
        return ws

    @property
    def read_only(self) -> bool:
        """True when this user cannot write the index (or make its WAL files beside it): a reviewer's access.
        Reads then use a read-only connection; `write` refuses with one line."""
        index_ok = not self.index_path.exists() or os.access(self.index_path, os.W_OK)    # a new index: the folder's
        return not (index_ok and os.access(self.root, os.W_OK | os.X_OK))

    def connect(self) -> sqlite3.Connection:
        """A new connection (the caller closes it): WAL mode (the rollback journal on a network file system,
        `journal_mode_for`), busy timeout, foreign keys, autocommit; read-only when this user cannot write the
        index (``read_only``).

        Prefer `read()` / `write()`, which close it for you.
        """
        if self.read_only:
            return self._connect_read_only()
        try:
            con = sqlite3.connect(self.index_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.DatabaseError as e:
            raise WorkspaceError(f"{self.index_path}: cannot open the index ({e})") from e
        try:
            con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _set_journal_mode(con, self.index_path)
            con.execute("PRAGMA synchronous=FULL")  # the audit log must survive a power cut, not just a crash
            con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            con.close()
            raise WorkspaceError(f"{self.index_path}: cannot open the index ({e})") from e
        con.row_factory = sqlite3.Row
        return con

    def check_writable(self) -> None:
        """WorkspaceError (one line) when this user cannot write the workspace (``read_only``): for a command
        that records what it does (a gated stage, a grant), before any of its work."""
        if self.read_only:
            raise WorkspaceError(f"{self.root}: this user ({current_user()}) cannot write the workspace's index "
                                 f"({self.index_path}); reading works, but this command records what it does: run "
                                 "it as a user who can write the workspace")

    def _connect_read_only(self) -> sqlite3.Connection:
        """A read-only connection for a user who cannot write the index. While a writer has the index open its
        WAL files exist and SQLite reads through them (``mode=ro``); when none has, SQLite cannot make them for
        this user, and the index file alone is the whole index: it is read as it stands (``immutable=1``)."""
        uri = self.index_path.absolute().as_uri()
        last = None
        for mode in ("mode=ro", "immutable=1"):
            if mode == "immutable=1" and any(Path(f"{self.index_path}-{j}").exists() for j in ("wal", "journal")):
                break                           # a writer's log is there: reading the file alone would miss it
            try:
                con = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.DatabaseError as e:
                last = e
                continue
            try:
                con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as e:
                con.close()
                last = e
                continue
            con.row_factory = sqlite3.Row
            return con
        raise WorkspaceError(f"{self.index_path}: cannot open the index read-only ({last})")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading; closed on exit."""
        con = self.connect()
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (``BEGIN IMMEDIATE``): committed on a clean exit, rolled back if
        the block raises; the connection is closed either way. Keep the block short: other processes
        wait for it (up to BUSY_TIMEOUT_S)."""
        self.check_writable()
        con = self.connect()
        try:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise WorkspaceError(f"{self.index_path}: index busy for more than {BUSY_TIMEOUT_S:.0f} s "
                                     f"(another Doppel process holds it?): {e}") from e
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()
        finally:
            con.close()


def init_workspace(directory: str | os.PathLike) -> Workspace:
    """Create (or complete) the workspace at ``directory``, as `doppel init` does. A new workspace is built in a
    sibling temporary folder and moved into place, its index last, so that a failure (a full disk) leaves no
    half-made index; an existing workspace is completed in place (`Workspace.init`)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise WorkspaceError(f"{directory}: exists and is not a folder")
    if (directory / INDEX_NAME).exists():
        return Workspace.init(directory)
    directory.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_folder(directory.absolute().parent, f".{directory.absolute().name}.init-")   # mkdir()'s mode
    try:
        Workspace.init(tmp)
        if not directory.exists():
            os.rename(tmp, directory)
            return Workspace(directory)
        names = sorted(p.name for p in tmp.iterdir())
        for name in sorted(names, key=lambda n: (n == INDEX_NAME, n.startswith(INDEX_NAME))):  # index last
            if not (directory / name).exists():
                os.rename(tmp / name, directory / name)
        return Workspace(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def _create_index_file(index: Path) -> None:
    """Make the (empty) index file with the mode a plain open() gives: 0666 through the umask or the folder's default
    ACL. SQLite makes a new database 0644 whatever either says (and gives its WAL files the database's mode), so a
    team's folder under `umask 002`, or shared by a default ACL, got an index only its creator could write."""
    try:
        os.close(os.open(index, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        pass


def current_user() -> str:
    """``user@host`` of the process (recorded in every audit record, named when the workspace refuses a write)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# Columns added to existing tables since schema 3 (table, column, declaration): ALTERed into older indexes.
_ADDED_COLUMNS = (("consents", "timezone", "TEXT"),)


def journal_mode_for(index_path: Path) -> str:
    """"WAL", or "DELETE" (SQLite's rollback journal) when the index is on a network file system, where the
    write-ahead log's shared memory is not shared between machines (`core.filesystems`)."""
    from core.filesystems import on_network_fs

    return "DELETE" if on_network_fs(index_path.parent) else "WAL"


_WARNED_JOURNAL: set[str] = set()


def _set_journal_mode(con: sqlite3.Connection, index_path: Path) -> None:
    """Put the connection's database in `journal_mode_for` its place. An index moved onto a network file system
    in WAL mode is turned back to the rollback journal by the first connection alone with it; until then (another
    process has it open) the mode cannot change, which is said once."""
    import logging

    from core.filesystems import on_network_fs

    fs = on_network_fs(index_path.parent)
    want = "DELETE" if fs else "WAL"
    got = str(con.execute(f"PRAGMA journal_mode={want}").fetchone()[0]).upper()
    if fs and str(index_path) not in _WARNED_JOURNAL:
        _WARNED_JOURNAL.add(str(index_path))
        logging.getLogger(__name__).warning(
            "%s is on a network file system (%s): SQLite's rollback journal is used, as SQLite advises there "
            "(its write-ahead log cannot be shared between machines)%s", index_path, fs,
            "" if got == want else f"; the index is still in {got} mode while another process has it open")


def _create_schema(con: sqlite3.Connection) -> None:
    """Create every missing table and index; record the schema version (inside the caller's transaction)."""
    for stmt in _statements(_SCHEMA):
        con.execute(stmt)
    for table, column, decl in _ADDED_COLUMNS:         # tables made by an older schema lack them
        if column not in {r[1] for r in con.execute(f"PRAGMA table_info({table})")}:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    con.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(SCHEMA_VERSION),))


def _ensure_key(root: Path) -> None:
    from assets.manifest_signing import load_key

    load_key(root, create=True)


def _schema_version(con: sqlite3.Connection) -> int | None:
    has_meta = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return None
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else None


def _statements(script: str) -> list[str]:
    """Split the schema into statements (executescript would COMMIT the open transaction)."""
    out, buf = [], []
    for line in script.splitlines():
        line = line.split("--", 1)[0].rstrip()
        if not line:
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            out.append(joined)
            buf = []
    if buf:
        raise AssertionError(f"incomplete schema statement: {buf}")
    return out
