"""`doppel review`: a static review site of a workspace or of stage folders, optionally served on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.commands.cli_output import cli_console
from doppel.consent_gate import WorkspaceOpt


def review(
    source: Path = typer.Argument(None, show_default=False,
                                  help="A workspace (doppel.sqlite), a stage folder, a demo folder or a .glb "
                                       "(default: the workspace of --workspace, $DOPPEL_WORKSPACE, else the current "
                                       "folder)."),
    out: Path = typer.Option(..., "--out", help="Site folder to write (replaced whole)."),
    serve: bool = typer.Option(False, "--serve", help="Serve the site on http://127.0.0.1:PORT/ until Ctrl-C."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port for --serve (0: any free port)."),
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a static review site (actors, consents, lineage, audit state; 3D viewers of glTF exports, previews
    beside metrics, figures, provenance) that opens from disk or over HTTP."""
    from assets.workspace import INDEX_NAME, resolve_root
    from doppel.review import build_site, make_server

    if source is not None and workspace is not None:
        raise ValueError("give the workspace as SOURCE or as --workspace, not both")
    if source is None:
        source = resolve_root(workspace)
        if not (source / INDEX_NAME).is_file():
            raise ValueError(f"{source}: not a Doppel workspace (no {INDEX_NAME}); give SOURCE (a workspace, a "
                             "stage folder, a demo folder or a .glb) or --workspace")
    console = cli_console()
    with console.status("review: writing the site"):
        res = build_site(source, out, force=force)
    console.print(f"review: {len(res.pages)} page(s), {res.viewers} 3D viewer(s) -> {res.index}")
    if res.withheld:
        console.print(f"review: {res.withheld} output(s) of revoked or expired consents listed without their files "
                      "(their pages say what to withdraw)")
    if res.unrecorded:
        console.print(f"review: warning: the site holds copies of {len(res.copied)} output(s) and could not be "
                      f"recorded in the workspace ({res.unrecorded}): a consent's purge will not find it; delete it "
                      "when the review is done", style="yellow", highlight=False, soft_wrap=True)
    if not serve:
        return
    server = make_server(res.root, port)
    host, bound = server.server_address[:2]
    console.print(f"serving http://{host}:{bound}/ (127.0.0.1 only; Ctrl-C stops)")
    try:
        server.serve_forever()
    except BaseException as e:
        # Ctrl-C / SIGTERM (KeyboardInterrupt, or doppel.cli's Interrupted) only stop serving: the site is complete
        if isinstance(e, Exception | SystemExit):
            raise
        console.print(f"review: server stopped; the site stays in {res.root}")
    finally:
        server.server_close()
