"""`doppel actor add|list`: the people (and the virtual actor) a workspace holds."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assets.actors import add_actor, id_is_hashed, list_actors
from assets.text_fields import printable
from assets.workspace import Workspace
from doppel.consent_gate import WorkspaceOpt

app = typer.Typer(help="Actors: the real people whose likeness the workspace holds.", no_args_is_help=True)


@app.command("add")
def add(name: str = typer.Argument(..., help="The person's name, as in the consent documents."),
        actor_id: str | None = typer.Option(None, "--id", help="Short id for the command line (default: from NAME)."),
        workspace: WorkspaceOpt = None) -> None:
    """Register a real person. Nothing can be made from their likeness until `doppel consent grant`."""
    actor = add_actor(Workspace.open(workspace), name, actor_id)
    console = Console()
    console.print(f"actor added: {actor.id} ({escape(actor.name)}); next: doppel consent grant {actor.id} --uses ... "
                  "--production ... --expires YYYY-MM-DD", highlight=False)
    if actor_id is None and id_is_hashed(actor.id, actor.name):
        console.print(f"the id {actor.id} is a hash of the name (it has no Latin letters to spell an id from); "
                      "to use a readable one, add the actor with --id (lowercase letters, digits, '-', '_')",
                      highlight=False)


@app.command("list")
def list_(workspace: WorkspaceOpt = None) -> None:
    """Every actor in the workspace."""
    table = Table("id", "name", "added", "consent")
    for a in list_actors(Workspace.open(workspace)):
        table.add_row(a.id, escape(printable(a.name)), a.created[:19],
                      "not required (virtual)" if a.virtual else "required")
    Console().print(table)
