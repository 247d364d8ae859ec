"""doppel.commands.plain_table (the fast path for long tables off a terminal) against Rich's own drawing of the
same tables (the reference): the same characters, or None and Rich draws it."""

import io
import random
import time

import pytest
from rich.table import Table

from doppel.commands.cli_output import cli_console, print_table, print_with_rich
from doppel.commands.plain_table import plain_table

_PIECES = ["a", "asset-3f2a", "rigs/jane", "李娜", "ÉTÉ", " ", "[red]bad[/red]", r"\[x]", "12.5", ":smile:",
           "c-0123456789ab (revoked)", "not needed", "/srv/studio/ws/exports/take00012.glb", "x" * 40, ""]


def _table(rng: random.Random) -> Table:
    ncol = rng.randint(1, 8)
    title = rng.choice([None, "consents of jane-doe (now: 2026-12-06T01:47+00:00)", "QC", "doppel batch"])
    t = Table(title=title)
    for k in range(ncol):
        t.add_column(rng.choice(["asset", "kind", "path", "n", "李娜", f"col{k}"]),
                     justify=rng.choice(["left", "left", "right", "center"]))
    for _ in range(rng.randint(0, 12)):
        t.add_row(*["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4))) for _ in range(ncol)])
    return t


@pytest.mark.parametrize("soft_wrap", [True, False])
def test_the_fast_drawing_is_richs_to_the_character(soft_wrap):
    rng = random.Random(7)
    drawn = 0
    for _ in range(300):
        table = _table(rng)
        rich_out, fast_out = io.StringIO(), io.StringIO()
        rich_console, fast_console = cli_console(file=rich_out), cli_console(file=fast_out)
        rich_console.soft_wrap = fast_console.soft_wrap = soft_wrap
        print_with_rich(table, rich_console)
        text = plain_table(table, fast_console)
        if text is not None:
            drawn += 1
            assert text == rich_out.getvalue()
    # every table of these shapes is drawn by the fast path, but for a title wider than its table on a console that
    # wraps (Rich wraps the title; Doppel's own consoles off a terminal never wrap)
    assert drawn == 300 if soft_wrap else drawn >= 290


def test_what_it_does_not_draw_is_left_to_rich():
    console = cli_console(file=io.StringIO())
    t = Table("a", show_lines=True)
    t.add_row("x")
    assert plain_table(t, console) is None
    t = Table("a")
    t.add_row("two\nlines")
    assert plain_table(t, console) is None
    assert plain_table(Table(title="no columns"), console) is None
    print_table(t, console)
    assert "two" in console.file.getvalue()


def test_a_production_sized_listing_is_fast(capsys):
    """20,000 rows of `assets list`'s eight columns: about 20 s through Rich's layout on the 2-core VM."""
    t = Table("asset", "kind", "actor", "path", "made", "use", "production", "consent")
    for i in range(20_000):
        t.add_row(f"export-{i:012x}", "export", "actor-003", f"exports/actor-003/take{i:05d}.glb",
                  "2026-12-06T02:05:11", "export", "Big Show", "c-0123456789ab")
    t0 = time.process_time()        # this process's CPU time: another test process on the core does not count
    print_table(t, cli_console())
    seconds = time.process_time() - t0
    out = capsys.readouterr().out
    assert out.count("\n") == 20_004 and "take19999.glb" in out
    assert seconds < 2.0, seconds
