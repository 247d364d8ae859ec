"""`doppel init`: create an asset-library workspace (shared with a group with --group)."""

from __future__ import annotations

from pathlib import Path

import typer

from assets.workspace import STAGE_FOLDERS, init_workspace
from doppel.commands.cli_output import cli_console


def init(directory: Path = typer.Argument(..., help="Folder of the new workspace (created if missing)."),
         group: str = typer.Option(None, "--group", help="Share the workspace with this POSIX group: every member "
                                   "writes it and signs in its name (an existing workspace too; run by its owner).")
         ) -> None:
    """Create an asset-library workspace: SQLite index + stage folders. Safe to run twice."""
    ws = init_workspace(directory)
    console = cli_console()
    console.print(f"workspace ready: {ws.root} (index {ws.index_path.name}; folders {', '.join(STAGE_FOLDERS)})",
                  soft_wrap=True)
    if group is None:
        return
    from assets.workspace_sharing import fix_commands, share_workspace

    report = share_workspace(ws, group)
    console.print(f"shared with group {group}: its members write the workspace and sign in its name "
                  f"({report.changed} files and folders changed)", soft_wrap=True)
    if report.others:
        console.print(f"[yellow]{len(report.others)} paths are other users' and lack the group's rights; their "
                      "owners (or an administrator) run:[/yellow]", soft_wrap=True)
        for line in fix_commands(report):
            console.print(f"  {line}", soft_wrap=True, markup=False)
