"""`doppel doctor`: what is installed, what is configured, and how to fix what is missing."""

from __future__ import annotations

import typer
from rich.table import Table

from doppel.commands.cli_output import cli_console, print_table
from doppel.environment import check_environment


def doctor() -> None:
    """Report versions of Doppel's dependencies, CUDA, and SMPL-X/FLAME model files.

    Exits non-zero, naming the fix, when something required is missing.
    """
    console = cli_console()
    checks = check_environment()
    table = Table(title="doppel doctor", show_lines=False)
    for col in ("component", "status", "detail"):
        table.add_column(col)
    for c in checks:
        status = "[green]ok[/green]" if c.ok else ("[red]MISSING[/red]" if c.required else "[yellow]absent[/yellow]")
        table.add_row(c.name, status, c.detail + (f"  -> {c.fix}" if (not c.ok and c.fix) else ""))
    print_table(table, console)
    missing = [c for c in checks if c.required and not c.ok]
    if missing:
        for c in missing:
            console.print(f"[red]required: {c.name}: {c.fix}[/red]")
        raise typer.Exit(1)
    console.print("[green]all required components present[/green]")
