"""Free-text fields people type (actor names, productions, revoke reasons, document names): one rule for all.

They are stored in the index and the audit log and printed by `doppel actor list`, `consent show`, ... so they
must not carry control characters: an ESC (``\\x1b``) or C1 CSI (``\\x9b``) starts a terminal escape sequence
that can rewrite the screen, recolour or hide text; bidirectional overrides reorder what a reader sees. Such
values are refused at the boundary (`check_text`), and anything printed from an older index goes through
`printable` (control characters shown as ``\\xNN`` escapes).
"""

from __future__ import annotations

import unicodedata

from core.errors import DoppelError

MAX_TEXT = 200
# Unicode bidirectional embedding / override / isolate controls (Trojan Source), and line/paragraph separators.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029")


class TextFieldError(DoppelError, ValueError):
    """A free-text field is empty, too long, or carries control characters."""


def _bad_char(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _BIDI


def check_text(value: str, what: str, max_len: int = MAX_TEXT, forbid: str = "") -> str:
    """``value`` stripped, or TextFieldError naming ``what`` (a field or option) and the offending character.

    Refused: empty, longer than ``max_len``, control characters (C0, DEL, C1: terminal escape sequences),
    bidirectional controls, and any character in ``forbid``.
    """
    value = value.strip()
    if not value:
        raise TextFieldError(f"{what}: must not be empty")
    if len(value) > max_len:
        raise TextFieldError(f"{what}: {len(value)} characters, at most {max_len}")
    bad = next((ch for ch in value if _bad_char(ch) or ch in forbid), None)
    if bad is not None:
        kind = f"{bad!r}" if bad in forbid else f"control character U+{ord(bad):04X}"
        raise TextFieldError(f"{what}: {kind} is not allowed (control characters could rewrite the terminal of "
                             "whoever reads it)" if bad not in forbid else f"{what}: {kind} is not allowed")
    return value


def printable(value: str | None) -> str:
    """``value`` with control and bidirectional characters shown as ``\\xNN`` / ``\\uNNNN`` (for printing values
    stored before `check_text` existed)."""
    if value is None:
        return ""
    return "".join(ch.encode("unicode_escape").decode("ascii") if _bad_char(ch) else ch for ch in value)
