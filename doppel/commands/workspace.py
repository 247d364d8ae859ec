"""`doppel init`: create an asset-library workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from assets.workspace import STAGE_FOLDERS, init_workspace
from doppel.commands.cli_output import cli_console


def init(directory: Path = typer.Argument(..., help="Folder of the new workspace (created if missing).")) -> None:
    """Create an asset-library workspace: SQLite index + stage folders. Safe to run twice."""
    ws = init_workspace(directory)
    cli_console().print(f"workspace ready: {ws.root} (index {ws.index_path.name}; folders {', '.join(STAGE_FOLDERS)})",
                        soft_wrap=True)
