"""`doppel audit verify|show`: the workspace's hash-chained audit log."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from assets import audit
from assets.workspace import Workspace
from doppel.commands.cli_output import cli_console
from doppel.consent_gate import WorkspaceOpt

app = typer.Typer(help="The append-only, hash-chained audit log of every gated action.", no_args_is_help=True)


@app.command("verify")
def verify(head: str | None = typer.Option(None, "--head", help="A head hash printed by an earlier verify and "
                                           "kept elsewhere: the log must still contain it."),
           workspace: WorkspaceOpt = None) -> None:
    """Check the hash chain; names every edited, deleted or reordered record. Exit 1 on any problem."""
    report = audit.verify(Workspace.open(workspace), expected_head=head)
    console = cli_console()
    if report.ok:
        console.print(f"audit log OK: {report.records} records, head {report.head_seq} {report.head_hash}",
                      soft_wrap=True)
        return
    err = cli_console(stderr=True)
    for p in report.problems:
        err.print(f"[red]{escape(p.message)}[/red]", soft_wrap=True)
    err.print(f"[red]audit log FAILED: {len(report.problems)} problem(s) in {report.records} records[/red]")
    raise typer.Exit(1)


@app.command("show")
def show(last: int = typer.Option(20, "--last", help="How many of the latest records (0: all)."),
         workspace: WorkspaceOpt = None) -> None:
    """Print the latest audit records as JSON lines (not verified; use `doppel audit verify`)."""
    for e in audit.entries(Workspace.open(workspace), last=last or None):
        typer.echo(json.dumps(e.record, sort_keys=True))
