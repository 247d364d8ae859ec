"""Issue 21 sections 5/6 for actors and consents: ids for names without Latin letters, consent documents that are
not files, and terminal escape sequences in names, reasons and productions (refused at the boundary; printed
escaped when an older index holds them)."""

import datetime as dt
import sqlite3

import pytest

from assets.actors import add_actor, slugify
from assets.workspace import Workspace
from tests.cli_runner import run_cli

FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()
ESCAPES = ["\x1b[2J\x1b[31mowned", "ok\x9b31m", "tab\there", "new\nline", "rtl\u202eevil", "del\x7f"]


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPPEL_WORKSPACE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    return Workspace.init(tmp_path / "ws")


def test_name_without_latin_letters_gets_a_hashed_id_and_a_hint(capsys, ws):
    code, out, err = run_cli(capsys, "actor", "add", "李娜", "-W", ws.root)
    assert code == 0, err
    actor_id = slugify("李娜")
    assert actor_id.startswith("actor-") and len(actor_id) == 16 and actor_id in out and "--id" in out
    code, _, err = run_cli(capsys, "actor", "add", "李娜", "-W", ws.root)  # same name, same id: taken
    assert code == 1 and "already exists" in err and "--id" in err
    code, out, err = run_cli(capsys, "actor", "add", "李娜", "--id", "li-na", "-W", ws.root)
    assert code == 0 and "actor added: li-na" in out and "hash" not in out
    assert slugify("José Núñez") == "jose-nunez" and slugify("Jane Doe") == "jane-doe"
    code, _, err = run_cli(capsys, "actor", "add", "Unknown", "-W", ws.root)  # reserved for outputs made outside
    assert code == 1 and "reserved" in err and "--id" in err


@pytest.mark.parametrize("doc", ["/dev/zero", "folder", "empty"])
def test_consent_document_must_be_a_real_file(tmp_path, capsys, ws, doc):
    add_actor(ws, "Jane Doe")
    path = {"/dev/zero": "/dev/zero", "folder": str(tmp_path), "empty": str(tmp_path / "empty.pdf")}[doc]
    (tmp_path / "empty.pdf").write_bytes(b"")
    code, _, err = run_cli(capsys, "consent", "grant", "jane-doe", "--uses", "scan", "--production", "Dune",
                           "--expires", FUTURE, "--document", path, "-W", ws.root)
    assert code == 1 and err.count("\n") == 1 and "not found" not in err and path in err
    assert {"/dev/zero": "device", "folder": "a folder", "empty": "empty file"}[doc] in err


@pytest.mark.parametrize("bad", ESCAPES)
def test_control_characters_are_refused_everywhere(tmp_path, capsys, ws, bad):
    code, _, err = run_cli(capsys, "actor", "add", bad, "--id", "x", "-W", ws.root)
    assert code == 1 and "actor name" in err and "\x1b" not in err and "\x9b" not in err
    add_actor(ws, "Jane Doe")
    code, _, err = run_cli(capsys, "consent", "grant", "jane-doe", "--uses", "scan", "--production", bad,
                           "--expires", FUTURE, "-W", ws.root)
    assert code == 1 and "production" in err
    code, out, _ = run_cli(capsys, "consent", "grant", "jane-doe", "--uses", "scan", "--production", "Dune",
                           "--expires", FUTURE, "-W", ws.root)
    cid = out.split()[1].rstrip(":")
    code, _, err = run_cli(capsys, "consent", "revoke", cid, "--reason", bad, "-W", ws.root)
    assert code == 1 and "--reason" in err and "\x1b" not in err
    code, _, err = run_cli(capsys, "rig", "--out", tmp_path / "r", "--production", bad, "-W", ws.root)
    assert code == 1 and "--production" in err and not (tmp_path / "r").exists()


def test_names_stored_by_an_older_doppel_print_escaped(capsys, ws):
    con = sqlite3.connect(ws.index_path)
    con.execute("INSERT INTO actors(id, name, created, virtual) VALUES ('eve', ?, '2026-01-01', 0)",
                ("\x1b[2J[bold]Eve\x9b",))
    con.execute("INSERT INTO consents(id, actor_id, uses, production, expires, granted, granted_by, revoked, "
                "revoke_reason) VALUES ('c-1', 'eve', 'scan', 'Dune', '2099-01-01', 'now', 'me', '2026-01-02', ?)",
                ("\x1b]0;pwned\x07",))
    con.commit()
    con.close()
    code, out, _ = run_cli(capsys, "actor", "list", "-W", ws.root)
    assert code == 0 and "\x1b" not in out and "\x9b" not in out and "\\x1b[2J[bold]Eve" in out
    code, out, _ = run_cli(capsys, "consent", "show", "eve", "-W", ws.root)
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out
