"""Printing a table of the CLI: Rich's box on a terminal (cut to its width, as usual); whole, never cut, when the
output goes to a file or a pipe (a log, `grep`), where Rich would otherwise cut every cell to fit 80 columns."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` on ``console`` (default: standard output); off a terminal at the width it needs."""
    console = console or Console()
    if not console.is_terminal:
        need = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
        if need > console.width:
            console = Console(file=console.file, width=need, no_color=console.no_color)
    console.print(table)
