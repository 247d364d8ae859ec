"""The side folder a swap writes beside its OUT (``<OUT stem>_swap/``: tracks, report, strips, manifest) and whose
it is. Light on purpose: the batch report and the CLI name it without importing the swap pipeline."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

STAGE = "swap"               # the side folder's manifest stage


def side_folder(out: str | Path) -> Path:
    """The folder beside OUT that holds the tracks, report and strips."""
    out = Path(out)
    return out.parent / f"{out.stem if out.suffix else out.name}_swap"


def side_folder_of(side: Path) -> Path | None:
    """The output whose swap wrote the side folder ``side`` (its manifest's output_plate), None when none did."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        manifest = json.loads((side / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("stage") == STAGE:
            return Path(manifest["output_plate"])
    return None


def written_by_swap(out: Path, side: Path) -> bool:
    """Whether ``side`` records a swap into ``out`` (a file or folder of that name beside it)."""
    other = side_folder_of(side)
    return other is not None and other.name == out.name      # side: beside
