"""`doppel init`: create an asset-library workspace."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from assets.workspace import INDEX_NAME, STAGE_FOLDERS, Workspace, WorkspaceError


def init(directory: Path = typer.Argument(..., help="Folder of the new workspace (created if missing).")) -> None:
    """Create an asset-library workspace: SQLite index + stage folders. Safe to run twice."""
    ws = init_whole(directory)
    Console().print(f"workspace ready: {ws.root} (index {ws.index_path.name}; folders {', '.join(STAGE_FOLDERS)})")


def init_whole(directory: Path) -> Workspace:
    """A new workspace is built in a sibling temporary folder and moved into place, its index last, so that a
    failure (a full disk) leaves no half-made index; an existing workspace is completed in place."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise WorkspaceError(f"{directory}: exists and is not a folder")
    if (directory / INDEX_NAME).exists():
        return Workspace.init(directory)
    directory.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.absolute().name}.init-", dir=directory.absolute().parent))
    try:
        Workspace.init(tmp)
        if not directory.exists():
            os.chmod(tmp, 0o777 & ~_umask())
            os.rename(tmp, directory)
            return Workspace(directory)
        names = sorted(p.name for p in tmp.iterdir())
        for name in sorted(names, key=lambda n: (n == INDEX_NAME, n.startswith(INDEX_NAME))):  # index last
            if not (directory / name).exists():
                os.rename(tmp / name, directory / name)
        return Workspace(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
