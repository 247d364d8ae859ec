"""The audit log: append-only, hash-chained records of every gated action and consent change.

Each record is a JSON object written in canonical form (sorted keys, no spaces) with its position
``seq`` (1, 2, 3, ... without gaps) inside it. Its hash chains it to the record before:

    hash[seq] = sha256(hash[seq - 1] + "\\n" + record_json[seq]),   hash[0] = "0" * 64

`append` runs inside the caller's write transaction (`Workspace.write`), so an action's outputs and its
audit record are committed together or not at all, and two processes never append after the same head.
The head (last seq and hash) is also kept in ``meta`` so that a deleted last record is noticed; for
protection against someone who rewrites the whole index, keep the head that `doppel audit verify`
prints somewhere else and pass it back with ``--head``.

`verify` walks the chain and names every record that was edited, deleted or moved.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from assets.workspace import Workspace, current_user

GENESIS_HASH = "0" * 64
_HEAD_KEY = "audit_head"


def utc_now() -> str:
    """The current time, UTC, ISO-8601 with microseconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record_json}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    hash: str
    record: dict  # the decoded record (action, actor, use, production, consent, inputs, outputs, time, user, ...)


def append(con: sqlite3.Connection, record: dict[str, Any]) -> AuditEntry:
    """Append ``record`` (JSON-serialisable; ``seq``, ``time`` and ``user`` are filled in) to the log.

    Must run inside a write transaction (`Workspace.write`); returns the new entry.
    """
    if not con.in_transaction:
        raise RuntimeError("audit.append must run inside Workspace.write()")
    row = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS_HASH)
    full = {"time": utc_now(), "user": current_user(), **record, "seq": seq}
    text = canonical_json(full)
    h = chain_hash(prev, text)
    con.execute("INSERT INTO audit(seq, record, prev_hash, hash) VALUES (?, ?, ?, ?)", (seq, text, prev, h))
    con.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (_HEAD_KEY, f"{seq} {h}"))
    return AuditEntry(seq, h, full)


def entries(ws: Workspace, last: int | None = None) -> list[AuditEntry]:
    """The log's records in order (the ``last`` N only, when given). Does not verify them."""
    with ws.read() as con:
        if last:
            rows = con.execute("SELECT * FROM (SELECT seq, hash, record FROM audit ORDER BY seq DESC LIMIT ?) "
                               "ORDER BY seq", (last,)).fetchall()
        else:
            rows = con.execute("SELECT seq, hash, record FROM audit ORDER BY seq").fetchall()
    out = []
    for r in rows:
        try:
            rec = json.loads(r["record"])
        except json.JSONDecodeError:
            rec = {"unreadable": r["record"]}
        out.append(AuditEntry(r["seq"], r["hash"], rec))
    return out


@dataclass(frozen=True)
class AuditProblem:
    seq: int         # the record (position in the log) the problem is about
    message: str     # one line naming the record and what is wrong with it


@dataclass
class AuditReport:
    records: int                       # records found in the log
    head_seq: int                      # seq of the last record (0 when empty)
    head_hash: str                     # its hash (GENESIS_HASH when empty)
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(ws: Workspace, expected_head: str | None = None) -> AuditReport:
    """Check the whole chain; every problem names the record concerned.

    expected_head: a head hash noted earlier (from a previous verify); the log must still contain it
    (records may have been appended since).
    """
    with ws.read() as con:
        rows = con.execute("SELECT seq, record, prev_hash, hash FROM audit ORDER BY seq").fetchall()
        meta = con.execute("SELECT value FROM meta WHERE key=?", (_HEAD_KEY,)).fetchone()
    problems: list[AuditProblem] = []
    parsed = []
    hash_of: dict[int, str] = {0: GENESIS_HASH}  # a record's own seq -> its hash (intact records only)
    for r in rows:
        try:
            rec_seq = json.loads(r["record"]).get("seq")
        except (json.JSONDecodeError, AttributeError):
            rec_seq = None
        content_ok = chain_hash(r["prev_hash"], r["record"]) == r["hash"]
        parsed.append((r["seq"], rec_seq, content_ok, r["prev_hash"]))
        if content_ok and isinstance(rec_seq, int):
            hash_of[rec_seq] = r["hash"]
    expected_seq = 1
    for seq, rec_seq, content_ok, prev in parsed:
        if not content_ok:
            problems.append(AuditProblem(seq, f"audit record {seq} was edited: its content does not match its hash"))
        elif rec_seq != seq:
            problems.append(AuditProblem(seq, f"audit record {rec_seq} found at position {seq}: "
                                              "records were reordered or renumbered"))
        elif seq != expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            problems.append(AuditProblem(expected_seq, f"audit record {gap} deleted (the log jumps from "
                                                       f"{expected_seq - 1} to {seq})"))
        elif seq - 1 in hash_of and prev != hash_of[seq - 1]:
            # (when record seq-1 is missing or edited, that problem is already named)
            problems.append(AuditProblem(seq, f"audit record {seq}: chain broken, it does not follow record "
                                              f"{seq - 1} (record {seq - 1} was replaced, or {seq} re-hashed)"))
        expected_seq = seq + 1
    seen_hashes = {r["hash"] for r in rows}
    head_seq = rows[-1]["seq"] if rows else 0
    head_hash = rows[-1]["hash"] if rows else GENESIS_HASH
    if meta is not None:
        m_seq, m_hash = meta[0].split()
        m_seq = int(m_seq)
        if m_seq > head_seq:
            gap = f"{m_seq}" if m_seq == head_seq + 1 else f"{head_seq + 1}..{m_seq}"
            problems.append(AuditProblem(head_seq + 1, f"audit record {gap} deleted from the end of the log "
                                                       f"(the index's head says {m_seq} records)"))
        elif m_seq == head_seq and m_hash != head_hash:
            problems.append(AuditProblem(head_seq, f"audit record {head_seq}: the last record is not the one "
                                                   "the index's head recorded (replaced)"))
    elif rows:
        problems.append(AuditProblem(head_seq, "the index's audit head is missing (meta row deleted)"))
    if expected_head and expected_head not in seen_hashes:
        problems.append(AuditProblem(0, f"the head {expected_head[:16]}... noted earlier is no longer in the log "
                                        "(the log was rewritten)"))
    return AuditReport(len(rows), head_seq, head_hash, problems)
