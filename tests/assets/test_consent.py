import datetime as dt

import pytest

from assets import audit
from assets.actors import ActorError, add_actor, list_actors
from assets.consent import ConsentError, Use, consents_for, find_valid, grant, revoke
from assets.workspace import VIRTUAL_ACTOR_ID, Workspace
from core.storage import sha256_file
from doppel.consent_gate import authorize

TODAY = dt.date(2026, 6, 1)
EXPIRES = dt.date(2026, 12, 31)
ALL_USES = [u.value for u in Use]


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe")
    return ws


def check(ws, use, production="Dune", today=TODAY):
    return authorize(ws, "jane-doe", use, production, today=today)


@pytest.mark.parametrize("use", ALL_USES)
def test_each_use_refused_allowed_expired_revoked_other_production(ws, use):
    with pytest.raises(ConsentError, match=f"refused: no valid consent from actor 'jane-doe' for use '{use}'"):
        check(ws, use)
    c = grant(ws, "jane-doe", use, "Dune", EXPIRES, today=TODAY)
    assert check(ws, use).consent_id == c.id
    assert check(ws, use, today=EXPIRES).consent_id == c.id          # the expiry day itself is still valid
    with pytest.raises(ConsentError, match=f"{c.id} expired 2026-12-31"):
        check(ws, use, today=EXPIRES + dt.timedelta(days=1))
    with pytest.raises(ConsentError, match=f"{c.id} is for production 'Dune'"):
        check(ws, use, production="Arrakis")
    other = ALL_USES[(ALL_USES.index(use) + 1) % len(ALL_USES)]
    with pytest.raises(ConsentError, match=f"covers {use} only"):
        check(ws, other)
    revoke(ws, c.id, "actor withdrew")
    with pytest.raises(ConsentError, match=f"{c.id} revoked .* \\(actor withdrew\\)"):
        check(ws, use)


def test_several_consents_pick_a_valid_one(ws):
    old = grant(ws, "jane-doe", "scan,fit", "Dune", "2026-06-30", today=TODAY)
    new = grant(ws, "jane-doe", ["fit", "rig"], "Dune", "2027-06-30", today=TODAY)
    assert check(ws, "scan").consent_id == old.id
    assert check(ws, "fit").consent_id == new.id  # the one expiring last
    revoke(ws, new.id, "renegotiated")
    assert check(ws, "fit").consent_id == old.id
    assert [c.id for c in consents_for(ws, "jane-doe")] == [old.id, new.id]


def test_refusals_are_audited(ws):
    with pytest.raises(ConsentError):
        check(ws, "render")
    rec = audit.entries(ws)[-1].record
    assert rec["action"] == "gate.refused" and rec["use"] == "render" and rec["actor"] == "jane-doe"
    assert "no valid consent" in rec["detail"]["reason"]


@pytest.mark.parametrize(("uses", "production", "expires", "message"), [
    ("scan,paint", "Dune", "2026-12-31", "uses"),
    ("", "Dune", "2026-12-31", "at least one use"),
    ("scan", "  ", "2026-12-31", "production"),
    ("scan", "Dune, Part 2", "2026-12-31", "without commas"),
    ("scan", "Dune", "31/12/2026", "expires"),
    ("scan", "Dune", "2026-02-30", "expires"),
    ("scan", "Dune", "2026-05-31", "in the past"),
])
def test_grant_validates_user_values(ws, uses, production, expires, message):
    with pytest.raises(ConsentError, match=message):
        grant(ws, "jane-doe", uses, production, expires, today=TODAY)
    assert consents_for(ws, "jane-doe") == []


def test_grant_stores_document_hash_not_document(ws, tmp_path):
    doc = tmp_path / "signed.pdf"
    doc.write_bytes(b"%PDF-1.4 signed by Jane Doe" * 100)
    c = grant(ws, "jane-doe", "scan", "Dune", EXPIRES, document=doc, today=TODAY)
    assert c.document_sha256 == sha256_file(doc) and c.document_name == "signed.pdf"
    assert b"signed by Jane Doe" not in ws.index_path.read_bytes()
    with pytest.raises(FileNotFoundError, match="missing.pdf"):
        grant(ws, "jane-doe", "scan", "Dune", EXPIRES, document=tmp_path / "missing.pdf", today=TODAY)


def test_unknown_actor_and_consent(ws):
    with pytest.raises(ActorError, match="unknown actor 'bob'.*jane-doe"):
        grant(ws, "bob", "scan", "Dune", EXPIRES, today=TODAY)
    with pytest.raises(ConsentError, match="unknown consent 'c-nope'"):
        revoke(ws, "c-nope", "x")
    with pytest.raises(ConsentError, match="use 'paint'"):
        check(ws, "paint")


def test_revoke_twice_and_empty_reason(ws):
    c = grant(ws, "jane-doe", "scan", "Dune", EXPIRES, today=TODAY)
    with pytest.raises(ConsentError, match="reason"):
        revoke(ws, c.id, " ")
    revoke(ws, c.id, "done")
    with pytest.raises(ConsentError, match="already revoked"):
        revoke(ws, c.id, "again")


def test_actor_ids(ws):
    with pytest.raises(ActorError, match="already exists"):
        add_actor(ws, "Jane Doe")
    assert add_actor(ws, "Jane Doe", actor_id="jane-doe-2").id == "jane-doe-2"
    with pytest.raises(ActorError, match="reserved"):
        add_actor(ws, "Someone", actor_id=VIRTUAL_ACTOR_ID)
    with pytest.raises(ActorError, match="lowercase"):
        add_actor(ws, "Someone", actor_id="Bad Id")
    ids = {a.id: a.virtual for a in list_actors(ws)}
    assert ids == {"jane-doe": False, "jane-doe-2": False, VIRTUAL_ACTOR_ID: True}


def test_virtual_actor_needs_no_consent(ws):
    for use in ALL_USES:
        a = authorize(ws, VIRTUAL_ACTOR_ID, use, "anything", today=TODAY)
        assert a.virtual and a.consent_id is None and "not required" in a.provenance["consent"]
    assert authorize(None, VIRTUAL_ACTOR_ID, "fit", "demo").virtual
    with pytest.raises(ConsentError, match="a workspace is needed"):
        authorize(None, "jane-doe", "fit", "Dune")
    with pytest.raises(ConsentError, match="needs no consent"):
        grant(ws, VIRTUAL_ACTOR_ID, "scan", "Dune", EXPIRES, today=TODAY)


def test_find_valid_reads_inside_a_transaction(ws):
    c = grant(ws, "jane-doe", "fit", "Dune", EXPIRES, today=TODAY)
    with ws.read() as con:
        assert find_valid(con, "jane-doe", Use.FIT, "Dune", TODAY).id == c.id
