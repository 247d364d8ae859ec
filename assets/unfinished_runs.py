"""Runs under a consent that began and did not finish, and what they left on disk.

A gated run's audit record is written when it finishes (`doppel.consent_gate`); a run killed, interrupted or
stopped by an error writes none, yet it may leave the likeness it worked on beside its outputs: a swap's frames
in a temporary folder, a neural double's training checkpoint (`core.leftovers`). So a run under a consent first
appends ``run.begin`` (`record_begin`: who, which consent, the outputs it is about to write, the machine, the
process and when), and a purge of that consent finds those outputs' leftovers (`unfinished_of`):

* a temporary sibling belongs to the command that began last, among the runs declaring that output, before the
  temporary name's own time (`TIME_SLACK_NS` for clocks of other machines sharing the disk), and so to every
  consent that command's gates passed (a swap's: the double's actor's and the plate performer's);
* a checkpoint belongs to the consents its owners.json names; one that names none, at an output a run under this
  consent declared, is taken for theirs too (whose it is cannot be told: the likeness is not left behind).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assets import audit
from assets.lineage import on_disk, workspace_relative
from assets.workspace import Workspace
from core.leftovers import Leftover, leftovers_of

BEGIN = "run.begin"
TIME_SLACK_NS = 5_000_000_000      # a temporary name's time may run this far behind its run's begin record


def record_begin(ws: Workspace, *, actor: str, consent: str, use: str, production: str, command: str,
                 outputs: Sequence[str | os.PathLike]) -> int:
    """Append the ``run.begin`` record of a run under ``consent`` about to write ``outputs``; returns its seq."""
    with ws.write() as con:
        return audit.append(con, {
            "action": BEGIN, "command": command, "actor": actor, "use": use, "production": production,
            "consent": consent, "outputs": [workspace_relative(ws, o) for o in outputs],
            "detail": {"host": socket.gethostname(), "pid": os.getpid(), "started_ns": time.time_ns()}}).seq


@dataclass(frozen=True)
class Unfinished:
    """A leftover of a run under the consent: the output it was writing (as the index stores paths) and what
    is left beside it."""

    output: str
    leftover: Leftover


@dataclass(frozen=True)
class _Begun:
    consent: str
    started_ns: int
    outputs: tuple[str, ...]
    process: tuple[str, int] = ("", 0)       # (host, pid) of the command that began it


def unfinished_of(ws: Workspace, consent_id: str) -> list[Unfinished]:
    """The leftovers (`core.leftovers.leftovers_of`) of the outputs runs under ``consent_id`` declared that are
    theirs (the module's rules), each once, in the order found."""
    begun = _begins(ws)
    by_output: dict[str, list[_Begun]] = {}
    for b in begun:
        for o in b.outputs:
            by_output.setdefault(o, []).append(b)
    found: dict[Path, Unfinished] = {}
    listings: dict[Path, list[str]] = {}
    for stored, runs in by_output.items():
        if not any(r.consent == consent_id for r in runs):
            continue
        out = on_disk(ws, stored)
        if out.parent not in listings:          # a folder of many outputs listed once
            listings[out.parent] = sorted(os.listdir(out.parent)) if out.parent.is_dir() else []
        for left in leftovers_of(out, listings[out.parent]):
            if left.path not in found and _theirs(left, runs, consent_id):
                found[left.path] = Unfinished(stored, left)
    return list(found.values())


def _theirs(left: Leftover, runs: list[_Begun], consent_id: str) -> bool:
    if left.kind == "checkpoint":
        return left.owners is None or any(o.get("consent") == consent_id for o in left.owners)
    if left.started_ns is None:
        return False
    before = [r for r in runs if r.started_ns <= left.started_ns + TIME_SLACK_NS]
    if not before:
        return False
    last = max(before, key=lambda r: r.started_ns).process      # the command writing it, with all its gates (a
    return any(r.consent == consent_id for r in before if r.process == last)   # swap's: the double's, the plate's)


def _begins(ws: Workspace) -> list[_Begun]:
    """Every ``run.begin`` record of the log, in order."""
    out = []
    with ws.read() as con:
        for (text,) in con.execute("SELECT record FROM audit WHERE record LIKE ? ORDER BY seq",
                                   (f'%"action":"{BEGIN}"%',)):
            rec = json.loads(text)
            if rec.get("action") != BEGIN or not rec.get("consent"):
                continue
            detail = rec.get("detail") or {}
            started = detail.get("started_ns")
            if isinstance(started, int):
                out.append(_Begun(str(rec["consent"]), started, tuple(str(o) for o in rec.get("outputs") or ()),
                                  (str(detail.get("host", "")), int(detail.get("pid") or 0))))
    return out
