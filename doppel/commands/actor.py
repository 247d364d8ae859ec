"""`doppel actor add|list|face`: the people (and the virtual actor) a workspace holds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from assets.actors import add_actor, id_is_hashed, list_actors
from assets.text_fields import printable
from assets.workspace import Workspace
from doppel.commands.cli_output import cli_console, print_table
from doppel.consent_gate import ProductionOpt, WorkspaceOpt

app = typer.Typer(help="Actors: the real people whose likeness the workspace holds.", no_args_is_help=True)


@app.command("add")
def add(name: str = typer.Argument(..., help="The person's name, as in the consent documents."),
        actor_id: str | None = typer.Option(None, "--id", help="Short id for the command line (default: from NAME)."),
        workspace: WorkspaceOpt = None) -> None:
    """Register a real person. Nothing can be made from their likeness until `doppel consent grant`."""
    actor = add_actor(Workspace.open(workspace), name, actor_id)
    console = cli_console()
    console.print(f"actor added: {actor.id} ({escape(actor.name)}); next: doppel consent grant {actor.id} --uses ... "
                  "--production ... --expires YYYY-MM-DD", highlight=False)
    if actor_id is None and id_is_hashed(actor.id, actor.name):
        console.print(f"the id {actor.id} is a hash of the name (it has no Latin letters to spell an id from); "
                      "to use a readable one, add the actor with --id (lowercase letters, digits, '-', '_')",
                      highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per actor, one per line, for scripts."),
          workspace: WorkspaceOpt = None) -> None:
    """Every actor in the workspace."""
    from assets.lineage import list_assets
    from doppel.face_reference import REFERENCE_KIND

    ws = Workspace.open(workspace)
    faces = {a.actor_id: a.created[:19] for a in list_assets(ws, kind=REFERENCE_KIND)}
    if as_json:
        import json

        for a in list_actors(ws):
            typer.echo(json.dumps({"id": a.id, "name": a.name, "added": a.created, "virtual": bool(a.virtual),
                                   "face_reference": None if a.virtual else faces.get(a.id)}, ensure_ascii=False))
        return
    table = Table("id", "name", "added", "consent", "face reference")
    for a in list_actors(ws):
        table.add_row(a.id, escape(printable(a.name)), a.created[:19],
                      "not required (virtual)" if a.virtual else "required",
                      "-" if a.virtual else faces.get(a.id, "none"))
    print_table(table)


@app.command("face")
def face(actor_id: str = typer.Argument(..., metavar="ACTOR", help="The actor whose face the photos show."),
         photos: list[Path] = typer.Argument(None, metavar="[PHOTO]...", help="Photos of the actor's face, alone in "
                                             "each, at least 32 px wide (frontal and turned views help)."),
         capture: Path = typer.Option(None, "--capture", help="Take the photos from the actor's capture session "
                                      "(its first frame): the cameras showing their face widest."),
         views: int = typer.Option(4, "--views", min=1, max=16, help="With --capture: how many cameras' views."),
         production: ProductionOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Keep what ACTOR's face looks like (a face descriptor of each PHOTO, or of the best views of their capture
    session, and a crop of the first; never the photos), so that `doppel swap --plate-actor ACTOR` swaps only
    their face and refuses a plate that never shows them. Needs ACTOR's face_replace consent; made again, the
    newest replaces the last."""
    from assets.workspace import VIRTUAL_ACTOR_ID
    from core.stage_folders import staged_stage_dir
    from doppel.consent_gate import gate_from_cli
    from doppel.face_reference import (
        CONTACT_SHEET,
        REFERENCE_KIND,
        REFERENCE_STAGE,
        capture_views,
        reference_folder,
        write_face_reference,
    )

    if actor_id == VIRTUAL_ACTOR_ID:
        raise typer.BadParameter("the virtual actor needs no face reference (its plates prove themselves "
                                 "synthetic)", param_hint="ACTOR")
    if bool(photos) == (capture is not None):
        raise typer.BadParameter("give photos of the actor's face or --capture SESSION (one of the two)")
    if capture is not None:
        from capture.session import check_session_argument

        capture = check_session_argument(capture)
    out = reference_folder(Workspace.open(workspace).root, actor_id)
    inputs = list(photos or [capture])
    with gate_from_cli(workspace, actor_id, production, use="face_replace", command="actor face",
                       inputs=inputs, outputs=[out]) as run:
        params = {**run.manifest_params, "capture": str(capture) if capture else None}
        chosen = capture_views(capture, views) if capture is not None else photos
        with staged_stage_dir(out, REFERENCE_STAGE, inputs=inputs) as tmp:
            n = write_face_reference(chosen, tmp, params)
        run.add_output(out, kind=REFERENCE_KIND)
    what, sheet = "view(s) of the capture" if capture else "photo(s)", out / CONTACT_SHEET
    cli_console().print(f"face reference of {actor_id}: {n} {what} described -> {out} (their faces: {sheet}); "
                        f"`doppel swap --plate-actor {actor_id}` swaps only them from now on", markup=False,
                        highlight=False, soft_wrap=True)
