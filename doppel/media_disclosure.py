"""How commands that write imagery of a likeness disclose it (`assets.disclosure`), and their two options.

    from doppel.media_disclosure import LabelOpt, NoProvenanceOpt, check_no_provenance, discloser

    def cmd(..., no_provenance: NoProvenanceOpt = False, label: LabelOpt = None):
        with gate_from_cli(...) as run:
            check_no_provenance(no_provenance, run)                  # refused for a real actor
            disclose = discloser(run, no_provenance, label)          # Path -> None (a Discloser)
            write_png(tmp / "preview.png", ...); disclose(tmp / "preview.png")   # inside the staging folder

Policy: every synthetic image or video of a likeness is watermarked and signed by default. ``--no-provenance``
is allowed only for the built-in virtual actor (no real person); for any other actor it is refused before any
work. Outside a workspace files are not signed (no signing identity there; `assets.disclosure`). A workspace
that has never had `doppel keys init` gets a generated identity on first use (logged), like its manifest key.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from assets.consent import ConsentError
from assets.disclosure import Discloser, DisclosureContext, check_label

log = logging.getLogger(__name__)

NoProvenanceOpt = Annotated[bool, typer.Option(
    "--no-provenance", help="Write imagery without watermark and content credentials: only for the virtual actor "
                            "(refused for a real actor).")]
LabelOpt = Annotated[str | None, typer.Option(
    "--label", show_default=False, help="A visible label drawn on every image/frame, e.g. "
                                        "'Synthetic: digital double'.")]


def check_no_provenance(no_provenance: bool, run) -> None:
    """Refuse ``--no-provenance`` unless the run is the virtual actor's (ConsentError, one line)."""
    if no_provenance and not run.auth.virtual:
        raise ConsentError(f"{run.command}: --no-provenance is only allowed for the virtual actor; imagery of "
                           f"actor {run.auth.actor_id!r} is always watermarked and signed")


def ensure_identity(ws) -> None:
    """Make the workspace's signing identity on first use (logged), as `doppel keys init` would."""
    from assets.signing_keys import init_keys_if_missing

    info = init_keys_if_missing(ws)
    if info is not None:
        log.warning("%s: created a signing identity for content credentials (%s); `doppel keys init --force "
                    "--org NAME` names your studio", ws.root, info.signer_subject)


def discloser(run, no_provenance: bool, label: str | None, kind: str = "render",
              ingredients: Sequence[str | Path] = (), performer=None) -> Discloser:
    """A `assets.disclosure.Discloser` under ``run``'s authorisation: called on a written file it discloses it in
    place; its ``begin(name)`` lets a video or plate writer mark frames as it encodes them. With
    ``--no-provenance`` (checked: virtual actor only, for ``run`` and ``performer``) it only draws the visible
    label, if any. performer: the run of a face replacement's plate-performer gate; unless it is the virtual
    actor's, its actor and consent are recorded with every file (the file shows that person too)."""
    check_no_provenance(no_provenance, run)
    if performer is not None:
        check_no_provenance(no_provenance, performer)
    label = check_label(label)
    ctx = DisclosureContext.from_run(run, kind=kind, ingredients=ingredients, label=label)
    if performer is not None and not performer.auth.virtual:
        ctx = dataclasses.replace(ctx, performer=performer.auth.actor_id, performer_consent=performer.auth.consent_id)
    if no_provenance:
        if not label:
            return Discloser(None)
        ctx = DisclosureContext(None, ctx.actor_id, None, ctx.production, ctx.use, kind, (), label, run.command)
    elif run.ws is not None:
        from assets.signing_keys import load_identity

        ensure_identity(run.ws)
        load_identity(run.ws)        # an expired or unreadable identity fails now, before any slow work
    return Discloser(ctx)
