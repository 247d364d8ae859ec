"""Consent records: which uses of an actor's likeness are allowed, for which production, until when.

A consent covers a set of uses (`Use`) for one production, from the moment it is granted through its
``expires`` date (inclusive: a calendar day in the time zone recorded with it, `assets.consent_dates`, so every
machine agrees when it ends), until it is revoked. Revocation is
immediate: `find_valid` never returns a revoked consent, so new work stops at once.

User-supplied values (uses, production, dates) are validated with pydantic; errors name the field.
"""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
import stat
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from assets import audit
from assets.actors import get_actor
from assets.consent_dates import check_zone, local_zone_name, now_utc, today_in, zone_label
from assets.text_fields import check_text
from assets.workspace import Workspace
from core.errors import DoppelError
from core.storage import sha256_file


class Use(StrEnum):
    """What a consent allows doing with an actor's likeness."""

    SCAN = "scan"                  # capture sessions, landmarks, masks
    FIT = "fit"                    # body/face model fitting, scan-detail meshes
    RIG = "rig"                    # building the double's rig
    RETARGET = "retarget"          # driving the double with (stunt) mocap
    RENDER = "render"              # neural / photoreal renders of the double
    FACE_REPLACE = "face_replace"  # putting the actor's face on someone else's performance
    EXPORT = "export"              # FBX / USD / glTF handed to a vendor or DCC tool


class ConsentError(DoppelError):
    """No valid consent covers an action, or a consent record is malformed / unknown."""


def _fmt_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})")
    return "; ".join(parts)


class ConsentTerms(BaseModel):
    """The terms a person signed: validated from command-line or file input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uses: tuple[Use, ...]
    production: str
    expires: _dt.date

    @field_validator("uses", mode="before")
    @classmethod
    def _split_uses(cls, v):
        if isinstance(v, str):
            v = [u.strip() for u in v.split(",") if u.strip()]
        if not v:
            raise ValueError(f"at least one use is needed ({', '.join(u.value for u in Use)})")
        known = {u.value for u in Use}
        bad = [u for u in v if str(u) not in known]
        if bad:
            raise ValueError(f"unknown use {', '.join(map(repr, bad))} (expected {', '.join(sorted(known))})")
        return tuple(sorted({Use(u) for u in v}, key=list(Use).index))  # in the order Use declares them

    @field_validator("production")
    @classmethod
    def _production(cls, v: str) -> str:
        try:
            return check_text(v, "production", forbid=",")
        except ValueError as e:  # pydantic names the field itself
            raise ValueError(str(e).removeprefix("production: ")
                             + " (production must be 1-200 characters, without commas or control characters)") from None

    @classmethod
    def parse(cls, uses, production, expires) -> ConsentTerms:
        """Build from raw strings; raises ConsentError naming the bad field."""
        try:
            return cls(uses=uses, production=production, expires=expires)
        except ValidationError as e:
            raise ConsentError(f"consent: {_fmt_validation(e)}") from None


def parse_use(use: str | Use) -> Use:
    try:
        return Use(use)
    except ValueError:
        raise ConsentError(f"use {use!r}: expected one of {', '.join(u.value for u in Use)}") from None


@dataclass(frozen=True)
class Consent:
    id: str
    actor_id: str
    uses: tuple[Use, ...]
    production: str
    expires: _dt.date            # last valid day (inclusive)
    document_sha256: str | None  # SHA-256 of the signed document; the document itself is not stored
    document_name: str | None
    granted: str                 # UTC ISO-8601
    granted_by: str
    revoked: str | None          # UTC ISO-8601, None while in force
    revoked_by: str | None
    revoke_reason: str | None
    timezone: str | None = None  # IANA zone ``expires`` is a day in; None: recorded before zones were kept

    def today(self) -> _dt.date:
        """What day it is now in this consent's zone (assets.consent_dates)."""
        return today_in(self.timezone)

    def status(self, today: _dt.date | None = None) -> str:
        """'revoked', 'expired' or 'valid' on ``today`` (default: today in the consent's zone)."""
        today = today or self.today()
        if self.revoked:
            return "revoked"
        return "expired" if today > self.expires else "valid"

    def why_not(self, use: Use, production: str, today: _dt.date | None = None) -> str | None:
        """None when this consent covers (use, production, today); else a few words saying why not. ``today``:
        default today in the consent's zone."""
        today = today or self.today()
        if self.revoked:
            return f"{self.id} revoked {self.revoked[:10]} ({self.revoke_reason})"
        if today > self.expires:
            return f"{self.id} expired {self.expires.isoformat()} ({zone_label(self.timezone)})"
        if self.production != production:
            return f"{self.id} is for production {self.production!r}"
        if use not in self.uses:
            return f"{self.id} covers {','.join(self.uses)} only"
        return None


def _row_to_consent(r: sqlite3.Row) -> Consent:
    zone = r["timezone"] if "timezone" in r.keys() else None      # an index of schema 3, read by a reviewer
    return Consent(r["id"], r["actor_id"], tuple(Use(u) for u in r["uses"].split(",")), r["production"],
                   _dt.date.fromisoformat(r["expires"]), r["document_sha256"], r["document_name"], r["granted"],
                   r["granted_by"], r["revoked"], r["revoked_by"], r["revoke_reason"], zone)


def grant(ws: Workspace, actor_id: str, uses, production: str, expires, document: str | os.PathLike | None = None,
          today: _dt.date | None = None, timezone: str | None = None) -> Consent:
    """Record a consent. ``uses``: 'scan,fit' or a list; ``expires``: 'YYYY-MM-DD' or a date, not in the past.

    ``document``: the signed consent form; only its SHA-256 and file name are stored. ``timezone``: the IANA zone
    the dates are in (default: this machine's; assets.consent_dates). ``today``: default today in that zone.
    """
    terms = ConsentTerms.parse(uses, production, expires)
    try:
        zone = check_zone(timezone) if timezone is not None else local_zone_name()
    except ValueError as e:
        raise ConsentError(f"consent: {e}") from None
    today = today or today_in(zone)
    if terms.expires < today:
        raise ConsentError(f"consent: expires {terms.expires.isoformat()} is in the past (today is {today} in "
                           f"{zone})")
    doc_hash = doc_name = None
    if document is not None:
        doc = _check_document(Path(document))
        doc_hash, doc_name = sha256_file(doc), doc.name
    cid = "c-" + uuid.uuid4().hex[:12]
    now, user = audit.utc_now(), audit.current_user()
    with ws.write() as con:
        actor = get_actor(con, actor_id)
        if actor.virtual:
            raise ConsentError(f"actor {actor_id!r} is the built-in virtual actor: it needs no consent")
        con.execute("INSERT INTO consents(id, actor_id, uses, production, expires, document_sha256, document_name, "
                    "granted, granted_by, timezone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cid, actor_id, ",".join(terms.uses), terms.production, terms.expires.isoformat(), doc_hash,
                     doc_name, now, user, zone))
        audit.append(con, {"action": "consent.grant", "actor": actor_id, "consent": cid, "production": terms.production,
                           "detail": {"uses": list(terms.uses), "expires": terms.expires.isoformat(),
                                      "timezone": zone, "document_sha256": doc_hash}})
    return Consent(cid, actor_id, terms.uses, terms.production, terms.expires, doc_hash, doc_name, now, user,
                   None, None, None, zone)


def _check_document(doc: Path) -> Path:
    """The signed consent form: an existing, non-empty regular file whose name has no control characters."""
    if not doc.exists():
        raise FileNotFoundError(f"{doc}: consent document not found")
    mode = doc.stat().st_mode
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket, not a file"
        raise ConsentError(f"--document {doc}: {what}; give the signed consent form (a PDF or scan)")
    if doc.stat().st_size == 0:
        raise ConsentError(f"--document {doc}: empty file; give the signed consent form (a PDF or scan)")
    check_text(doc.name, "--document file name")
    return doc


def revoke(ws: Workspace, consent_id: str, reason: str) -> Consent:
    """Revoke a consent now (new work under it is refused from this moment); returns the revoked record."""
    if not reason.strip():
        raise ConsentError("revoke: --reason must not be empty (it is kept in the audit log)")
    reason = check_text(reason, "--reason", max_len=1000)
    now, user = audit.utc_now(), audit.current_user()
    with ws.write() as con:
        c = _get(con, consent_id)
        if c.revoked:
            raise ConsentError(f"consent {consent_id} was already revoked on {c.revoked} ({c.revoke_reason})")
        con.execute("UPDATE consents SET revoked=?, revoked_by=?, revoke_reason=? WHERE id=?",
                    (now, user, reason, consent_id))
        audit.append(con, {"action": "consent.revoke", "actor": c.actor_id, "consent": consent_id,
                           "production": c.production, "detail": {"reason": reason}})
        row = con.execute("SELECT * FROM consents WHERE id=?", (consent_id,)).fetchone()
    return _row_to_consent(row)


def _get(con: sqlite3.Connection, consent_id: str) -> Consent:
    row = con.execute("SELECT * FROM consents WHERE id=?", (consent_id,)).fetchone()
    if row is None:
        raise ConsentError(f"unknown consent {consent_id!r} (see `doppel consent show ACTOR`)")
    return _row_to_consent(row)


def get_consent(ws: Workspace, consent_id: str) -> Consent:
    with ws.read() as con:
        return _get(con, consent_id)


def consent_status(ws: Workspace, actor_id: str | None, consent_id: str | None,
                   today: _dt.date | None = None) -> str:
    """The status today of the consent a record or a file names for ``actor_id``, in words: "not needed (virtual
    actor)", valid / expired / revoked, or "unknown (why)" when none is named, this workspace does not hold it, or
    it is another actor's (what `doppel verify` prints for images, videos and exports)."""
    from assets.workspace import VIRTUAL_ACTOR_ID

    if actor_id == VIRTUAL_ACTOR_ID:
        return "not needed (virtual actor)"
    if not consent_id:
        return "unknown (no consent recorded)"
    try:
        c = get_consent(ws, consent_id)
    except ConsentError as e:
        return f"unknown ({e})"
    if c.actor_id != actor_id:
        return f"unknown (consent {consent_id} is actor {c.actor_id}'s, not {actor_id}'s)"
    return c.status(today)


def consents_for(ws: Workspace, actor_id: str) -> list[Consent]:
    """Every consent record of an actor, oldest first (ActorError if the actor is unknown)."""
    with ws.read() as con:
        get_actor(con, actor_id)
        rows = con.execute("SELECT * FROM consents WHERE actor_id=? ORDER BY granted", (actor_id,)).fetchall()
    return [_row_to_consent(r) for r in rows]


def find_valid(con: sqlite3.Connection, actor_id: str, use: Use | str, production: str,
               today: _dt.date | None = None) -> Consent:
    """The consent that allows ``use`` of ``actor_id`` for ``production`` on ``today`` (default: today in each
    consent's own zone; the one expiring last when several do), else ConsentError with one line saying why each
    candidate does not."""
    use = parse_use(use)
    rows = con.execute("SELECT * FROM consents WHERE actor_id=? ORDER BY expires DESC, granted", (actor_id,)).fetchall()
    reasons = []
    for c in map(_row_to_consent, rows):
        why = c.why_not(use, production, today)
        if why is None:
            return c
        reasons.append(why)
    seen = "; ".join(reasons) if reasons else "the actor has no consent records"
    when = today.isoformat() if today else now_utc().isoformat(timespec="minutes")
    raise ConsentError(f"refused: no valid consent from actor {actor_id!r} for use {use.value!r} in production "
                       f"{production!r} on {when} ({seen}); record one with `doppel consent grant "
                       f"{actor_id} --uses {use.value} --production {production!r} --expires YYYY-MM-DD`")


def outputs_of_lapsed_consents(ws: Workspace, today: _dt.date | None = None) -> list[tuple]:
    """(assets.lineage.Asset, Consent) for every registered output whose consent is revoked, or expired on
    ``today`` (default: today in each consent's zone): likeness a gated command could no longer make, which a
    review site or a hand-off must not copy anew. Oldest first; outputs of the virtual actor (no consent) never
    appear."""
    from assets.lineage import asset_from_row

    latest = today or today_in(None)          # no zone's date is later than UTC+14's: a superset, filtered below
    with ws.read() as con:
        rows = con.execute("SELECT a.*, c.id AS c_id FROM assets a JOIN consents c ON c.id = a.consent_id "
                           "WHERE c.revoked IS NOT NULL OR c.expires < ? ORDER BY a.created, a.rowid",
                           (latest.isoformat(),)).fetchall()
        consents = {cid: _get(con, cid) for cid in {r["c_id"] for r in rows}}
    return [(asset_from_row(r), consents[r["c_id"]]) for r in rows if consents[r["c_id"]].status(today) != "valid"]
