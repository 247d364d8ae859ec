"""A Rich table drawn as text without Rich's layout engine, for long tables off a terminal.

Rich measures and renders every cell through its renderable machinery: about 1 ms a row for `doppel assets list`'s
eight columns, 20 s for a production's 20,000 assets, most of it spent on a pipe or a log where nothing wraps. This
draws the same characters directly (the default heavy-head box, one space of padding, each column as wide as its
widest cell) for the tables Doppel's commands build, and returns None for a table using anything else, which Rich
then draws as before. `tests/doppel/test_plain_table.py` holds it to Rich's own output.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

_FEATURES_DRAWN = dict(show_header=True, show_footer=False, show_edge=True, show_lines=False, expand=False,
                       caption=None, leading=0, width=None, min_width=None)


def plain_table(table: Table, console: Console) -> str | None:
    """The text Rich prints for ``table`` on ``console`` (off a terminal, no colour; `cli_output.print_table`'s
    width rule), or None when the table uses something this does not draw (Rich draws it then)."""
    if not _drawable(table, console):
        return None
    header = [_plain(col.header, console) for col in table.columns]
    columns = [[_plain(c, console) for c in col.cells] for col in table.columns]
    if any(c is None for col in columns for c in col) or any(h is None for h in header):
        return None
    widths = [max([cell_len(h), *map(cell_len, col)]) for h, col in zip(header, columns, strict=True)]
    justify = [col.justify for col in table.columns]
    width = sum(widths) + 3 * len(widths) + 1
    lines = []
    if table.title is not None:
        title = _plain(table.title, console)
        if title is None or "\n" in title:
            return None
        if width > console.width or not console.soft_wrap:     # centred over the table (Rich's own rule)
            if cell_len(title) > width:
                return None
            left = (width - cell_len(title)) // 2
            title = " " * left + title + " " * (width - cell_len(title) - left)
        lines.append(title)
    b = box.HEAVY_HEAD
    lines.append(_rule(b.top_left, b.top, b.top_divider, b.top_right, widths))
    lines.append(_row(b.head_left, b.head_vertical, b.head_right, header, widths, justify))
    lines.append(_rule(b.head_row_left, b.head_row_horizontal, b.head_row_cross, b.head_row_right, widths))
    for cells in zip(*columns, strict=True):
        lines.append(_row(b.mid_left, b.mid_vertical, b.mid_right, cells, widths, justify))
    lines.append(_rule(b.bottom_left, b.bottom, b.bottom_divider, b.bottom_right, widths))
    return "\n".join(lines) + "\n"


def _drawable(table: Table, console: Console) -> bool:
    if console.is_terminal or console.color_system is not None or console.record or not table.columns:
        return False
    if table.box is not box.HEAVY_HEAD or tuple(table.padding) != (0, 1, 0, 1) or table.row_styles:
        return False
    if any(getattr(table, k) != v for k, v in _FEATURES_DRAWN.items()) or any(r.end_section for r in table.rows):
        return False
    return all(c.justify in ("left", "right", "center") and c.width is None and c.min_width is None
               and c.max_width is None and c.ratio is None for c in table.columns)


def _plain(cell, console: Console) -> str | None:
    """A cell's text as Rich shows it (markup and emoji codes applied); None for anything but one line of text."""
    if not isinstance(cell, str):
        return None
    text = console.render_str(cell).plain if ("[" in cell or ":" in cell) else cell
    return None if "\n" in text or "\t" in text or "\r" in text else text


def _rule(left: str, fill: str, cross: str, right: str, widths: list[int]) -> str:
    return left + cross.join(fill * (w + 2) for w in widths) + right


def _row(left: str, sep: str, right: str, cells, widths: list[int], justify: list[str]) -> str:
    out = []
    for text, w, j in zip(cells, widths, justify, strict=True):
        if j != "left":
            text = text.rstrip()           # Rich strips a right or centred line's trailing spaces before aligning it
        pad = w - cell_len(text)
        a = pad if j == "right" else pad // 2 if j == "center" else 0
        out.append(" " * (a + 1) + text + " " * (pad - a + 1))
    return left + sep.join(out) + right
