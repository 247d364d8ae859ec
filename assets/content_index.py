"""Content identity: which actor's likeness a file or folder is, known from its hashes alone.

A gated run registers, with its outputs, the hashes that identify them (table ``content``, schema 3):

* an output file: its SHA-256;
* an output folder: its data hash (every file but manifest.json, `assets.hashing.ContentDigest.data_sha256`)
  and the SHA-256 of each file its manifest lists as an output (rig.npz, animation.npz, landmarks.npz, ...);
* each input it read as an actor's likeness (a capture session, say): its data hash.

`matches` then answers "whose is this?" for an input of a later command, whatever its manifest says or
whether it still has one: removing or editing ``manifest.json`` leaves the data hash and the listed files'
hashes unchanged. Assets registered before this table existed are still found by their registered hash.

Limit: a folder whose data files were all changed too is new content (it is then as good as new data).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from assets.hashing import ContentDigest, tree_sha256

# The hash of empty content identifies nothing (an empty file or folder is everyone's); never indexed or matched.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_IDENTIFIES_NOTHING = frozenset({EMPTY_SHA256, tree_sha256({})})


@dataclass(frozen=True)
class ContentRow:
    sha256: str
    path: str                # stored path (as assets.path); "FOLDER/FILE" for a file inside an output folder
    asset_id: str | None     # None for an input that is not itself a registered asset


@dataclass(frozen=True)
class ContentMatch:
    sha256: str
    actor_id: str
    asset_id: str | None
    path: str


def output_rows(asset_id: str, stored: str, d: ContentDigest, listed: Sequence[str] = ()) -> list[ContentRow]:
    """Rows identifying one registered output: its data hash, plus each file in ``listed`` (paths relative to the
    folder, the manifest's outputs) that the folder holds."""
    rows = [ContentRow(d.data_sha256, stored, asset_id)]
    if d.is_dir:
        rows += [ContentRow(d.files[rel], f"{stored}/{rel}", asset_id) for rel in listed if rel in d.files]
    return rows


def input_rows(stored: str, d: ContentDigest, asset_id: str | None) -> list[ContentRow]:
    """The row identifying an input read as an actor's likeness: its data hash."""
    return [ContentRow(d.data_sha256, stored, asset_id)]


def insert(con: sqlite3.Connection, rows: Iterable[ContentRow], actor_id: str, audit_seq: int) -> None:
    """Add rows for ``actor_id`` (inside the caller's write transaction); known (hash, actor, path) are kept."""
    values = [(r.sha256, actor_id, r.asset_id, r.path, audit_seq) for r in rows if r.sha256 not in _IDENTIFIES_NOTHING]
    con.executemany("INSERT OR IGNORE INTO content(sha256, actor_id, asset_id, path, audit_seq) VALUES (?, ?, ?, ?, ?)",
                    values)


def matches(con: sqlite3.Connection, hashes: Iterable[str]) -> list[ContentMatch]:
    """Everything registered under any of ``hashes``: the content index, and assets' own registered hashes."""
    hs = sorted(set(hashes) - _IDENTIFIES_NOTHING)
    out: list[ContentMatch] = []
    for i in range(0, len(hs), 500):
        chunk = hs[i:i + 500]
        q = ",".join("?" * len(chunk))
        out += [ContentMatch(r[0], r[1], r[2], r[3]) for r in con.execute(
            f"SELECT sha256, actor_id, asset_id, path FROM content WHERE sha256 IN ({q})", chunk)]
        out += [ContentMatch(r[0], r[1], r[2], r[3]) for r in con.execute(
            f"SELECT sha256, actor_id, id, path FROM assets WHERE sha256 IN ({q})", chunk)]
    return out
