import json
import sqlite3

import pytest

from assets import audit
from assets.actors import add_actor
from assets.workspace import Workspace

N = 8


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    for i in range(N):  # N audit records: seq 1..N
        add_actor(ws, f"Actor {i}")
    return ws


def tamper(ws, *sql):
    """What a deliberate attacker does: drop the append-only triggers, then rewrite rows."""
    con = sqlite3.connect(ws.index_path)
    try:
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("DROP TRIGGER audit_no_delete")
        for s in sql:
            con.execute(*s) if isinstance(s, tuple) else con.execute(s)
        con.commit()
    finally:
        con.close()


def rows(ws):
    with ws.read() as con:
        return {r["seq"]: dict(r) for r in con.execute("SELECT * FROM audit")}


def messages(ws):
    report = audit.verify(ws)
    return [(p.seq, p.message) for p in report.problems]


def test_clean_log_verifies_and_chains(ws):
    report = audit.verify(ws)
    assert report.ok and report.records == N and report.head_seq == N
    r = rows(ws)
    assert r[1]["prev_hash"] == audit.GENESIS_HASH
    for s in range(2, N + 1):
        assert r[s]["prev_hash"] == r[s - 1]["hash"]
        assert r[s]["hash"] == audit.chain_hash(r[s]["prev_hash"], r[s]["record"])
        assert json.loads(r[s]["record"])["seq"] == s


def test_triggers_make_the_log_append_only(ws):
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), ws.write() as con:
        con.execute("UPDATE audit SET record='{}' WHERE seq=3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), ws.write() as con:
        con.execute("DELETE FROM audit WHERE seq=3")
    assert audit.verify(ws).ok


def test_edited_record_is_named(ws):
    rec = json.loads(rows(ws)[5]["record"])
    rec["detail"]["name"] = "Someone Else"
    tamper(ws, ("UPDATE audit SET record=? WHERE seq=5", (audit.canonical_json(rec),)))
    assert messages(ws) == [(5, "audit record 5 was edited: its content does not match its hash")]


def test_edited_and_rehashed_record_breaks_the_next_link(ws):
    r = rows(ws)[5]
    rec = json.loads(r["record"])
    rec["actor"] = "someone-else"
    text = audit.canonical_json(rec)
    tamper(ws, ("UPDATE audit SET record=?, hash=? WHERE seq=5", (text, audit.chain_hash(r["prev_hash"], text))))
    (seq, msg), = messages(ws)
    assert seq == 6 and "record 6: chain broken" in msg and "record 5 was replaced" in msg


def test_deleted_record_is_named(ws):
    tamper(ws, "DELETE FROM audit WHERE seq=4")
    assert messages(ws) == [(4, "audit record 4 deleted (the log jumps from 3 to 5)")]


def test_deleted_last_records_are_named(ws):
    tamper(ws, f"DELETE FROM audit WHERE seq>={N - 1}")
    assert messages(ws) == [(N - 1, f"audit record {N - 1}..{N} deleted from the end of the log "
                                    f"(the index's head says {N} records)")]


@pytest.mark.parametrize("how", ["swap_content", "swap_seq"])
def test_swapped_records_are_named(ws, how):
    if how == "swap_content":  # rows keep their seq, contents exchanged
        r = rows(ws)
        tamper(ws, *[("UPDATE audit SET record=?, prev_hash=?, hash=? WHERE seq=?",
                      (r[b]["record"], r[b]["prev_hash"], r[b]["hash"], a)) for a, b in ((3, 4), (4, 3))])
    else:  # renumber: 3 -> 4 and 4 -> 3
        tamper(ws, "UPDATE audit SET seq=-1 WHERE seq=3", "UPDATE audit SET seq=3 WHERE seq=4",
               "UPDATE audit SET seq=4 WHERE seq=-1")
    assert messages(ws) == [(3, "audit record 4 found at position 3: records were reordered or renumbered"),
                            (4, "audit record 3 found at position 4: records were reordered or renumbered")]


def test_delete_and_renumber_is_caught(ws):
    tamper(ws, "DELETE FROM audit WHERE seq=4", *[f"UPDATE audit SET seq={s - 1} WHERE seq={s}"
                                                  for s in range(5, N + 1)])
    msgs = messages(ws)
    assert msgs[0] == (4, "audit record 5 found at position 4: records were reordered or renumbered")
    assert any("deleted from the end" in m for _, m in msgs)


def test_rewritten_log_caught_by_an_external_head(ws):
    noted = audit.verify(ws).head_hash
    add_actor(ws, "Later Actor")  # appending keeps the noted head in the log
    assert audit.verify(ws, expected_head=noted).ok
    # An attacker rebuilds the whole chain from record 3 on (and the meta head): only the noted head can tell.
    r = rows(ws)
    prev, stmts = r[2]["hash"], []
    for s in range(3, N + 2):
        rec = json.loads(r[s]["record"])
        rec["user"] = "mallory"
        text = audit.canonical_json(rec)
        h = audit.chain_hash(prev, text)
        stmts.append(("UPDATE audit SET record=?, prev_hash=?, hash=? WHERE seq=?", (text, prev, h, s)))
        prev = h
    stmts.append(("UPDATE meta SET value=? WHERE key='audit_head'", (f"{N + 1} {prev}",)))
    tamper(ws, *stmts)
    assert audit.verify(ws).ok  # a full rewrite is self-consistent...
    report = audit.verify(ws, expected_head=noted)
    assert not report.ok and "no longer in the log" in report.problems[0].message  # ...but not with the anchor


def test_append_needs_a_transaction(ws):
    with ws.read() as con, pytest.raises(RuntimeError, match="inside Workspace.write"):
        audit.append(con, {"action": "x"})
