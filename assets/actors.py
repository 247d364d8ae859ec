"""Actors: the real people (and the one built-in virtual actor) whose likeness a workspace holds."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from dataclasses import dataclass

from assets import audit
from assets.text_fields import check_text
from assets.workspace import RESERVED_ACTOR_IDS, VIRTUAL_ACTOR_ID, Workspace
from core.errors import DoppelError

ACTOR_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ActorError(DoppelError):
    """An unknown actor, a malformed or taken actor id."""


@dataclass(frozen=True)
class Actor:
    id: str        # short stable id used on the command line: lowercase letters, digits, '-' and '_'
    name: str      # the person's name as written in the consent documents
    created: str   # UTC ISO-8601
    virtual: bool  # True for the built-in synthetic actor (needs no consent)


def slugify(name: str) -> str:
    """The default id of an actor called ``name``: 'Jane Doe' -> 'jane-doe', 'José Núñez' -> 'jose-nunez' (accents
    dropped). A name with no Latin letters or digits ('李娜') gets a hashed id, 'actor-' + 10 hex digits of its
    SHA-256: stable (the same name gives the same id) but not readable, so `add_actor` callers suggest --id."""
    return _ascii_slug(name) or "actor-" + hashlib.sha256(unicodedata.normalize("NFC", name).encode()).hexdigest()[:10]


def _ascii_slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")


def id_is_hashed(actor_id: str, name: str) -> bool:
    """True when ``actor_id`` is the hashed default id of ``name`` (not readable: worth choosing one with --id)."""
    return not _ascii_slug(name) and actor_id == slugify(name)


def check_actor_id(actor_id: str) -> str:
    if not ACTOR_ID_RE.match(actor_id):
        raise ActorError(f"actor id {actor_id!r}: use 1-64 lowercase letters, digits, '-' or '_', "
                         "starting with a letter or digit")
    return actor_id


def add_actor(ws: Workspace, name: str, actor_id: str | None = None) -> Actor:
    """Register a real person; returns the actor. The id defaults to the slug of the name."""
    name = check_text(name, "actor name")
    actor_id = check_actor_id(actor_id if actor_id is not None else slugify(name))
    if actor_id in RESERVED_ACTOR_IDS:
        what = "the built-in virtual actor" if actor_id == VIRTUAL_ACTOR_ID else "outputs made outside a workspace"
        raise ActorError(f"actor id {actor_id!r} is reserved for {what}; pick another --id")
    created = audit.utc_now()
    with ws.write() as con:
        try:
            con.execute("INSERT INTO actors(id, name, created, virtual) VALUES (?, ?, ?, 0)", (actor_id, name, created))
        except sqlite3.IntegrityError:
            other = con.execute("SELECT name FROM actors WHERE id=?", (actor_id,)).fetchone()
            raise ActorError(f"actor id {actor_id!r} already exists ({other['name']}); "
                             "give another with --id") from None
        audit.append(con, {"action": "actor.add", "actor": actor_id, "detail": {"name": name}})
    return Actor(actor_id, name, created, False)


def get_actor(con: sqlite3.Connection, actor_id: str) -> Actor:
    """The actor with this id, or ActorError naming the known ones."""
    row = con.execute("SELECT id, name, created, virtual FROM actors WHERE id=?", (actor_id,)).fetchone()
    if row is None:
        known = [r[0] for r in con.execute("SELECT id FROM actors ORDER BY id LIMIT 20")]
        raise ActorError(f"unknown actor {actor_id!r} (known: {', '.join(known)}); add one with `doppel actor add`")
    return Actor(row["id"], row["name"], row["created"], bool(row["virtual"]))


def list_actors(ws: Workspace) -> list[Actor]:
    with ws.read() as con:
        rows = con.execute("SELECT id, name, created, virtual FROM actors ORDER BY virtual, id").fetchall()
    return [Actor(r["id"], r["name"], r["created"], bool(r["virtual"])) for r in rows]
