"""THE provenance hook of the review site: one function, `check_provenance`, that the render/swap pages call for
every file they show, to fill their "provenance" column.

It asks `doppel verify`'s library function (`assets.media_verify.verify_file`: C2PA state against the workspace's
trust anchor, the invisible watermark, the audit record they point to and that consent's status today) and maps
its report onto `ProvenanceState`. Without that module (an older Doppel) every file says "not checked"; it never
guesses "valid".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvenanceState:
    state: str             # a few words shown in the column: "not checked", "signed, trusted", "invalid: ...", ...
    ok: bool | None        # True verified, False failed or missing, None not checked / cannot tell
    detail: str = ""       # one line shown as the cell's tooltip


NOT_CHECKED = ProvenanceState("not checked", None, "doppel verify is not available in this version of Doppel")


def check_provenance(path: str | Path, ws=None) -> ProvenanceState:
    """The provenance state of one rendered or swapped file (PNG, JPEG, EXR, MP4) at ``path``; ``ws``: the
    workspace (assets.workspace.Workspace) whose trust anchor and watermark key apply, None outside one."""
    try:
        from assets.media_verify import verify_file
    except ImportError:
        return NOT_CHECKED
    try:
        report = verify_file(path, ws)
    except (OSError, ValueError) as e:
        return ProvenanceState("unreadable", False, str(e))
    return state_of(report)


def state_of(report) -> ProvenanceState:
    """A `assets.media_verify.MediaReport` as a ProvenanceState (the column's words, pass/fail, one detail line)."""
    from assets.media_verify import describe

    detail = " | ".join(line.strip() for line in describe(report)[1:])
    if report.error:
        return ProvenanceState("unreadable", False, detail)
    c2pa, mark, rec = report.c2pa.state, report.watermark, report.record
    if c2pa == "invalid":
        return ProvenanceState(f"invalid: {report.c2pa.reason or 'edited after signing'}", False, detail)
    words = {"trusted": "signed, trusted", "untrusted": "signed, unknown signer"}.get(c2pa, "no C2PA")
    words += ", watermarked" if mark.found else ", no watermark"
    if rec is not None and rec.actor is not None:
        words += f"; consent {rec.consent_status}"
        if rec.performer is not None:       # a face replacement's real plate performer: their consent too
            words += f"; plate performer's consent {rec.performer_status}"
        if rec.consent_status in ("revoked", "expired") or rec.performer_status in ("revoked", "expired"):
            return ProvenanceState(words, False, detail)
    ok = c2pa == "trusted" or (mark.found and rec is not None and rec.actor is not None)
    return ProvenanceState(words, bool(ok), detail)


def check_export(path: str | Path, ws=None) -> ProvenanceState:
    """The provenance state of a 3D export (FBX, USD, glTF) at ``path`` (`assets.export_verify`): its sidecar's
    C2PA state, and ok when its bytes are the export the workspace registered under a consent still valid (or the
    virtual actor's); failed when unreadable, edited after signing, unregistered, or its consent revoked or
    expired; None outside a workspace."""
    from assets.export_verify import describe_export, verify_export

    try:
        report = verify_export(path, ws)
    except (OSError, ValueError) as e:
        return ProvenanceState("unreadable", False, str(e))
    detail = " | ".join(line.strip() for line in describe_export(report)[1:])
    if report.error:
        return ProvenanceState("unreadable", False, detail)
    c2pa = report.c2pa.state if report.c2pa is not None else "absent"
    if c2pa == "invalid":
        return ProvenanceState(f"invalid: {report.c2pa.reason or 'edited after signing'}", False, detail)
    signed = {"trusted": "signed, trusted", "untrusted": "signed, unknown signer"}.get(c2pa, "unsigned")
    rec = report.record
    if rec is None or rec.source != "content hash":
        words = "no Doppel provenance" if report.provenance is None else "not the registered export"
        return ProvenanceState(f"{signed}; {words}", None if ws is None else False, detail)
    lapsed = rec.consent_status in ("revoked", "expired")
    return ProvenanceState(f"{signed}; registered export, unchanged; consent {rec.consent_status}", not lapsed,
                           detail)
