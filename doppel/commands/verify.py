"""`doppel verify FILE...`: content credentials, watermark and the consent record of synthetic media."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from doppel.commands.cli_output import cli_console
from doppel.consent_gate import WorkspaceOpt


def verify(files: list[Path] = typer.Argument(..., help="Images (PNG, JPEG, EXR), videos (MP4) or 3D exports "
                                              "(FBX, USD, glTF) to check, or folders: every one of those under "
                                              "them."),
           as_json: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
           workspace: WorkspaceOpt = None) -> None:
    """For each file: C2PA state (trusted / untrusted / invalid / absent), the invisible watermark, and the
    workspace record both point to (actor, production, use, consent status today). A 3D export (FBX, USD, glTF):
    the provenance inside it and whether its bytes are an export registered in the workspace. Exit 1 if any is
    invalid or cannot be read. Outside a workspace only the C2PA signature is checked (no trust anchor, no watermark
    key)."""
    from assets.export_verify import describe_export, is_export, prefetch_fbx, verify_export
    from assets.media_verify import describe, media_files, verify_file
    from assets.signing_keys import trust_anchor, watermark_secret
    from assets.workspace import Workspace, WorkspaceError, resolve_root

    try:
        ws = Workspace.open(workspace)
    except WorkspaceError:
        if workspace is not None:
            raise
        ws = None
    console = cli_console(highlight=False)
    if ws is None and not as_json:
        console.print(f"(no workspace at {resolve_root(None)}: C2PA signature only, no trust anchor, "
                      "no watermark key)", markup=False)
    elif ws is not None and not as_json and watermark_secret(ws) is None:
        anchor = "the trust anchor from the index" if trust_anchor(ws) is not None else \
            "no trust anchor (the index keeps none yet: any gated command by the workspace's owner records it)"
        console.print(f"(workspace {ws.root}: this user cannot read its keys; {anchor}, no watermark key)",
                      markup=False)
    bad, files = 0, media_files(files)       # every path checked before the first (slow) read
    prefetch_fbx(files)                      # every binary FBX's provenance in one Blender start-up
    for f in files:
        report = verify_export(f, ws) if is_export(f) else verify_file(f, ws)
        bad += report.invalid
        if as_json:
            typer.echo(json.dumps(report.as_dict(), sort_keys=True))
        else:
            for line in (describe_export(report) if is_export(f) else describe(report)):
                console.print(line, markup=False, soft_wrap=True,
                              style="red" if report.invalid and line == report.path else None)
    if len(files) > 1 and not as_json:
        unread = sum(not os.access(f, os.R_OK) for f in files)
        console.print(f"verify: {len(files)} files, {bad} invalid" + (f" ({unread} of them not readable by this user, "
                      "so not checked)" if unread else ""), markup=False, style="red" if bad else None)
    if bad:
        raise typer.Exit(1)
