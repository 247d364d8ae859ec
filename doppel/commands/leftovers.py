"""`doppel assets leftovers`: what killed or interrupted runs left beside their outputs, and removing it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from doppel.commands.cli_output import cli_console, print_table
from doppel.consent_gate import WorkspaceOpt


def leftovers(folder: Path = typer.Argument(None, show_default=False,
                                            help="The folder to search (default: the workspace's root)."),
              clean: bool = typer.Option(False, "--clean", help="Remove the stopped temporary and working folders "
                                         "(never one a run on this machine is writing, nor another machine's)."),
              checkpoints: bool = typer.Option(False, "--checkpoints", help="With --clean: the stopped checkpoints "
                                               "too (a swap's or a training's: what --resume goes on from)."),
              workspace: WorkspaceOpt = None) -> None:
    """List the temporary files, working folders and checkpoints that runs left (a killed 4K swap's frames, a
    training's checkpoint), with their size and state; --clean removes what no run is using."""
    from assets.workspace import resolve_root
    from core.leftovers import find_leftovers, remove_leftover

    if checkpoints and not clean:
        raise ValueError("--checkpoints goes with --clean")
    root = folder if folder is not None else resolve_root(workspace)
    if not Path(root).is_dir():
        raise ValueError(f"{root}: not a folder")
    found = find_leftovers(root)
    console = cli_console()
    table = Table("path", "kind", "size", "state", "whose", title=f"left by runs under {root}: {len(found)}")
    removed = 0
    for f in found:
        left, action = f.leftover, ""
        kind = "checkpoint" if left.kind == "checkpoint" else (
            "working folder" if ".work-" in left.path.name else "temporary")
        if clean and f.state == "stopped" and (checkpoints or left.kind != "checkpoint"):
            remove_leftover(f)
            removed += f.bytes
            action = " (removed)"
        whose = ", ".join(f"{o.get('actor')} ({o.get('consent') or 'no consent'})" for o in left.owners or ())
        table.add_row(str(left.path), kind, f"{f.bytes / 1e6:.1f} MB", f.state + action, whose or "-")
    print_table(table, console)
    total = sum(f.bytes for f in found) / 1e6
    console.print(f"leftovers: {len(found)}, {total:.1f} MB" + (f"; removed {removed / 1e6:.1f} MB" if clean else
                                                                 "; `--clean` removes the stopped ones"),
                  highlight=False)
