"""Printing a long table off a terminal (a pipe, a log), as `doppel assets list` does for a production's assets:
Rich's own layout against the direct drawing (`doppel/commands/plain_table.py`), the same rows in the same run,
and checks that both print the same characters.

    PYTHONPATH=. python benchmarks/cli_tables.py [--rows N]
"""

from __future__ import annotations

import argparse
import io
import time

from rich.table import Table

from doppel.commands.cli_output import cli_console, print_table, print_with_rich


def listing(rows: int) -> Table:
    t = Table("asset", "kind", "actor", "path", "made", "use", "production", "consent")
    for i in range(rows):
        t.add_row(f"export-{i:012x}", "export", f"actor-{i % 10:03d}", f"exports/actor-{i % 10:03d}/take{i:05d}.glb",
                  "2026-12-06T02:05:11", "export", "Big Show", "c-0123456789ab")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    rows = ap.parse_args().rows
    out = {}
    for name, draw in (("rich", print_with_rich), ("direct", print_table)):
        console = cli_console(file=io.StringIO())
        table = listing(rows)
        t = time.perf_counter()
        draw(table, console)
        out[name] = (time.perf_counter() - t, console.file.getvalue())
    same = out["rich"][1] == out["direct"][1]
    print(f"{rows} rows x 8 columns off a terminal: Rich {out['rich'][0]:.2f} s, direct {out['direct'][0]:.2f} s "
          f"({out['rich'][0] / out['direct'][0]:.0f}x); identical output: {same}")


if __name__ == "__main__":
    main()
