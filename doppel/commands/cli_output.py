"""What the CLI prints, as Rich prints it on a terminal; off one (a log, a pipe, `grep`), where Rich would wrap every
line at 80 columns and cut every table cell to fit them, lines are never wrapped and tables are printed whole
(paths, ids and fingerprints are copied from these lines)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.tree import Tree

from doppel.commands.plain_table import plain_table


def cli_console(**kwargs) -> Console:
    """A command's `rich.console.Console` (``kwargs`` as Rich's): off a terminal its lines are never wrapped."""
    console = Console(**kwargs)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def print_table(table: Table | Tree, console: Console | None = None) -> None:
    """Print ``table`` (or a tree) on ``console`` (default: standard output); off a terminal at the width it
    needs."""
    console = console or Console()
    text = plain_table(table, console) if isinstance(table, Table) else None
    if text is not None:                 # off a terminal: drawn without Rich's layout engine (plain_table.py)
        console.file.write(text)
        return
    print_with_rich(table, console)


def print_with_rich(table: Table | Tree, console: Console) -> None:
    """`print_table` by Rich's own layout: on a terminal, and for what `plain_table` does not draw."""
    if not console.is_terminal:
        need = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
        if need > console.width:
            console = Console(file=console.file, width=need, no_color=console.no_color)
    console.print(table)


def stage_bar(console: Console, *columns, **kwargs):
    """A stage's `rich.progress.Progress` on ``console``: description, bar, done/total ("0/?" while the total is
    not known yet, never "0/None"), ``columns`` (extra Rich columns), elapsed time; ``kwargs`` as Rich's."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
                    TimeElapsedColumn(), console=console, **kwargs)


_INTERRUPT_NOTES: list[Callable[[], str | None]] = []


def on_interrupt(note: Callable[[], str | None]) -> None:
    """Register what the CLI adds to its "interrupted" line when this command is stopped by Ctrl-C or SIGTERM:
    ``note()`` is asked then (None: nothing to add), e.g. the checkpoint a training kept and how to resume it."""
    _INTERRUPT_NOTES.append(note)


def clear_interrupt_notes() -> None:
    """Forget the notes of an earlier command run in this process (the CLI calls it as each command starts)."""
    _INTERRUPT_NOTES.clear()


def interrupt_notes() -> list[str]:
    """The registered notes that have something to say now (each note asked once; errors in a note ignored)."""
    out = []
    for note in _INTERRUPT_NOTES:
        try:
            line = note()
        except Exception:  # noqa: BLE001 - a note must never hide the interruption itself
            line = None
        if line:
            out.append(line)
    return out
