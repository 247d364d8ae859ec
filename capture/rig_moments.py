"""Which photos of a rig's cameras were taken at the same moment, from their file names.

A board capture is IMAGES_DIR/CAMERA/*.png. Doppel's own synthetic rig names a moment's photo alike in every camera
folder (cam00/003.png, cam01/003.png), but real rigs name each camera's files after the camera (cam01_0001.jpg,
cam02_0001.jpg) or after the card and clip (A001_C002_0001.jpg): matched by whole names, no two cameras shared a
moment and the calibration could not place them in one frame. ``match_moments`` tries, in order: the whole file
name; the name without the camera folder's name in it; the last number in the name (the frame number). It keeps the
rule under which the most moments are seen by two or more cameras (a rule that gives one camera two files of one
moment is not used for it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

RULES = ("file name", "file name without the camera's name", "frame number")


def photos_by_camera(root: Path, suffixes: tuple[str, ...]) -> dict[str, dict[str, Path]]:
    """ROOT/CAMERA/*.SUFFIX -> camera folder name -> file stem -> path (camera folders without such a file left
    out; {} when there is none). The callers say what a missing or empty ROOT means for them."""
    out: dict[str, dict[str, Path]] = {}
    for cam_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {f.stem: f for f in sorted(cam_dir.iterdir()) if f.is_file() and f.suffix.lower() in suffixes}
        if files:
            out[cam_dir.name] = files
    return out


def _stem(cam: str, stem: str) -> str | None:
    return stem


def _without_camera(cam: str, stem: str) -> str | None:
    if cam.lower() not in stem.lower():
        return stem
    rest = re.sub(re.escape(cam), "", stem, flags=re.IGNORECASE)
    rest = re.sub(r"[_\-. ]{2,}", "_", rest).strip("_-. ")
    return rest or None


def _frame_number(cam: str, stem: str) -> str | None:
    numbers = re.findall(r"\d+", stem)
    return str(int(numbers[-1])) if numbers else None


_KEYS: tuple[Callable[[str, str], str | None], ...] = (_stem, _without_camera, _frame_number)


def _keyed(files: dict[str, dict[str, Path]], key: Callable[[str, str], str | None]
           ) -> dict[str, dict[str, Path]] | None:
    """camera -> moment -> path under one rule; None when the rule names no moment of a file, or gives one
    camera two files of one moment."""
    out: dict[str, dict[str, Path]] = {}
    for cam, by_stem in files.items():
        moments: dict[str, Path] = {}
        for stem, path in by_stem.items():
            k = key(cam, stem)
            if k is None or k in moments:
                return None
            moments[k] = path
        out[cam] = moments
    return out


def _shared(moments: dict[str, dict[str, Path]]) -> int:
    """How many moments two or more cameras saw."""
    seen: dict[str, int] = {}
    for by_moment in moments.values():
        for m in by_moment:
            seen[m] = seen.get(m, 0) + 1
    return sum(1 for n in seen.values() if n >= 2)


def match_moments(files: dict[str, dict[str, Path]]) -> tuple[dict[str, dict[str, Path]], str]:
    """files: camera -> file stem -> path. Returns (camera -> moment -> path, the rule used: one of RULES)."""
    best, best_rule, best_shared = files, RULES[0], _shared(files)
    for rule, key in zip(RULES[1:], _KEYS[1:], strict=True):
        if len(files) < 2 or best_shared == min(len(v) for v in files.values()):
            break                         # every photo of the smallest camera folder already has its partners
        keyed = _keyed(files, key)
        if keyed is not None and _shared(keyed) > best_shared:
            best, best_rule, best_shared = keyed, rule, _shared(keyed)
    return best, best_rule
