"""Clip files that hold several takes (a glTF's animations, an FBX's animation stacks) or several skeletons (two
performers, a prop): which one is read.

A take is asked for by its name (`doppel retarget --take NAME`): the exact name, else the one name equal to it
ignoring case, else the one ending in '|NAME' (Blender's FBX exporter names a take 'Object|Action'). Without a
name each format keeps its own default (a glTF's animation with the most keyframes, an FBX's first stack, the one
Blender's importer puts on the armature) and a file of several takes says which it read and what else it holds (a
warning), so a take is never picked silently. Likewise a skeleton (`--subject NAME`: an FBX's armature, a glTF's
root joint; the one with the most joints by default).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mocap_retarget.world_motion import ClipError

log = logging.getLogger(__name__)


def describe_takes(takes: dict[str, int]) -> str:
    """'Idle' (100 frames), 'T-Pose' (1 frame): ``takes`` maps a take's name to its frame count."""
    return ", ".join(f"{name!r} ({n} frame{'s' if n != 1 else ''})" for name, n in takes.items())


def pick_take(path: str | Path, names: list[str], take: str | None, default: int, what: str = "take") -> int:
    """The index into ``names`` of the one ``take`` names (exact, else the one equal ignoring case, else the one
    ending in '|take', in namespace 'take:' or under 'take/'), or ``default`` when ``take`` is None. Raises
    ClipError naming the file's ``what``s (takes, skeletons) when none matches."""
    if take is None:
        return default
    if take in names:
        return names.index(take)
    asked = take.casefold()
    for same in (lambda n: n.casefold() == asked,                                # 'walk' for 'Walk'
                 lambda n: n.casefold().endswith("|" + asked),                   # for Blender's 'Object|walk'
                 lambda n: n.casefold().startswith(asked + ":"),                 # 'Stunt1' for 'Stunt1:Hips'
                 lambda n: n.casefold().startswith(asked.strip("/") + "/")):     # for USD's 'Stunt1/Skeleton'
        found = [i for i, n in enumerate(names) if same(n)]
        if len(found) == 1:
            return found[0]
    listing = ", ".join(repr(n) for n in names)
    raise ClipError(f"{path}: no {what} named {take!r}; the file's {what}{'s' if len(names) != 1 else ''}: "
                    f"{listing}")


def note_skeletons(path: str | Path, bones: dict[str, int], chosen: str, asked: str | None) -> None:
    """Warn when a file of several skeletons (performers, props) was read without one named: which it read and the
    others, with their joint counts."""
    if asked is None and len(bones) > 1:
        listing = ", ".join(f"{n!r} ({k} joints)" for n, k in bones.items())
        log.warning("%s holds %d skeletons: %s; reading %r (--subject NAME reads another)", path, len(bones),
                    listing, chosen)


def note_takes(path: str | Path, takes: dict[str, int], chosen: str, asked: str | None) -> None:
    """Warn when a file of several takes was read without one named: which it read and the others."""
    if asked is None and len(takes) > 1:
        log.warning("%s holds %d takes: %s; reading %r (--take NAME reads another)", path, len(takes),
                    describe_takes(takes), chosen)


def unique_take_names(names: list[str | None]) -> list[str]:
    """Names for a file's takes: unnamed ones become 'take N' (1-based), repeats get ' (2)', ' (3)', ..."""
    out: list[str] = []
    for i, n in enumerate(names):
        base = n if n else f"take {i + 1}"
        name, k = base, 2
        while name in out:
            name, k = f"{base} ({k})", k + 1
        out.append(name)
    return out
