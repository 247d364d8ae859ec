"""THE provenance hook of the review site: one function, `check_provenance`, that the render/swap pages call for
every file they show, to fill their "provenance" column.

`doppel verify` (content credentials, watermark, signature checks: `assets/provenance`) is being written
separately. Until it exists this hook answers "not checked" for every file, and the page says so; it never
guesses "valid". When it lands, replace the body of `check_provenance` with a call to its library function and map
its result onto `ProvenanceState` (state: a few words, ok: True / False / None for not checked, detail: one line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProvenanceState:
    state: str             # a few words shown in the column: "not checked", "valid", "invalid: ...", ...
    ok: bool | None        # True verified, False failed, None not checked
    detail: str = ""       # one line shown as the cell's tooltip


NOT_CHECKED = ProvenanceState("not checked", None, "doppel verify is not available in this version of Doppel")


def check_provenance(path: str | Path) -> ProvenanceState:
    """The provenance state of one rendered or swapped file (PNG, JPEG, MP4) at ``path``.

    Hook for `doppel verify`: returns NOT_CHECKED until that command's library function exists.
    """
    del path
    return NOT_CHECKED
