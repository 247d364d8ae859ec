"""What a run leaves beside an output when it does not finish, and whose it is.

A stage writes ``OUT`` through a temporary sibling (``core.stage_folders.temp_sibling``:
``.OUT.tmp-HOST-PID-TIMENS_XXXX``) and keeps what lets it go on after an interruption in a checkpoint sibling
(``.OUT.checkpoint``, or ``.OUT.TAG.checkpoint``: a neural double's training, a swap's tracks and frames). A run
killed, or stopped by an error, leaves them; the next writer of ``OUT`` removes the temporary ones (or resumes
from the checkpoint). Until then they hold the likeness the run was working on: a consent's purge must find them
(`assets.unfinished_runs`), and it must not take a checkpoint another actor's run made at the same name.

So a checkpoint records whose it is: ``owners.json`` in it lists the consents (and actors) of the runs that wrote
it (`owned_by`: the gate sets who the work in progress is done for; `record_owner` adds them to a checkpoint).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.stage_folders import CHECKPOINT_TAGS, current_host, running_here, temp_key, temp_name_fields

CHECKPOINT_SUFFIX = ".checkpoint"
OWNERS_NAME = "owners.json"

_OWNERS: contextvars.ContextVar = contextvars.ContextVar("doppel_work_owners", default=())


def checkpoint_sibling(out: str | os.PathLike, tag: str = "") -> Path:
    """Where the checkpoint of a run writing ``out`` lives: ``.OUT.checkpoint`` beside it, ``.OUT.TAG.checkpoint``
    with a tag (another stage's kind of checkpoint of the same name; one of `CHECKPOINT_TAGS`, so that a purge
    tells the checkpoints of ``out`` from those of an output named ``out.TAG``)."""
    if tag not in CHECKPOINT_TAGS:
        raise ValueError(f"checkpoint tag {tag!r} is not one of {CHECKPOINT_TAGS} (add it there)")
    out = Path(out)
    return out.parent / f".{out.name}{'.' + tag if tag else ''}{CHECKPOINT_SUFFIX}"


@contextlib.contextmanager
def owned_by(consent: str | None, actor: str) -> Iterator[None]:
    """Inside the block, work is done under ``consent`` (an id; None: no consent, the virtual actor's or one
    outside a workspace) for ``actor``, besides the owners of blocks around it (a swap works for the double's
    actor and for the plate's performer): checkpoints written then record them all (`record_owner`)."""
    token = _OWNERS.set((*_OWNERS.get(), {"consent": consent, "actor": actor}))
    try:
        yield
    finally:
        _OWNERS.reset(token)


def record_owner(folder: str | os.PathLike) -> None:
    """Add the current owners (`owned_by`; nobody outside one) to ``folder``'s owners.json, each once."""
    current = _OWNERS.get()
    if not current:
        return
    from core.storage import atomic_write_json

    owners = owners_of(folder) or []
    new = [o for o in current if o not in owners]
    if new:
        atomic_write_json(Path(folder) / OWNERS_NAME, owners + new)


def owners_of(folder: str | os.PathLike) -> list[dict] | None:
    """The owners a checkpoint folder records (`record_owner`), or None when it records none (made outside a
    gate, or by an older Doppel) or the file cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        owners = json.loads((Path(folder) / OWNERS_NAME).read_text(encoding="utf-8"))
        if isinstance(owners, list) and all(isinstance(o, dict) for o in owners):
            return owners
    return None


@dataclass(frozen=True)
class Leftover:
    """A temporary sibling or a checkpoint of an output. started_ns: when the run that made a temporary one began
    writing it (its name's TIMENS; None for a checkpoint); alive: a temporary one whose process runs on this
    machine now (`core.stage_folders.running_here`), a checkpoint whose lock a run holds (`checkpoint_in_use`);
    host: the machine that made a temporary one; owners: a checkpoint's (`owners_of`)."""

    path: Path
    kind: str                    # "temporary" or "checkpoint"
    started_ns: int | None = None
    alive: bool = False
    host: str | None = None
    owners: list[dict] | None = None


def leftovers_of(out: str | os.PathLike, names: list[str] | None = None) -> list[Leftover]:
    """Every temporary sibling (``.OUT.tmp-*``, files and folders, and working folder ``.OUT.work-*``, whoever
    made them) and checkpoint (``.OUT.checkpoint``, ``.OUT.TAG.checkpoint``) of ``out`` beside it, in name order.
    names: the listing of ``out``'s folder when the caller has it (many outputs of one folder: listed once)."""
    out = Path(out)
    if names is None:
        names = sorted(os.listdir(out.parent)) if out.parent.is_dir() else []
    found, key = [], temp_key(out)
    checkpoints = {checkpoint_sibling(out, tag).name for tag in CHECKPOINT_TAGS}
    for p in (out.parent / n for n in names if n.startswith(".")):
        fields = temp_name_fields(p.name)
        if fields is not None and fields["name"] == key and fields["kind"] in ("tmp", "work"):
            found.append(Leftover(p, "temporary", fields["time_ns"], running_here(fields["host"], fields["pid"]),
                                  fields["host"]))
        elif p.name in checkpoints and p.is_dir():
            found.append(Leftover(p, "checkpoint", alive=checkpoint_in_use(p), owners=owners_of(p)))
    return found


@contextlib.contextmanager
def work_folder(out: str | os.PathLike, temp_default: bool = False) -> Iterator[Path]:
    """A working folder beside ``out`` for the block (`core.stage_folders.work_sibling`), removed when it ends:
    what a command makes on the way to ``out`` (a double's texture baked for a swap or an export, Blender's
    files) stays beside its output, where a consent's purge finds what a killed run left (`leftovers_of`); in the
    system's temporary folder it was out of the workspace's reach. temp_default: inside the block it is also
    `tempfile`'s default folder, for the library code the command calls (a CLI command's process, one run at a
    time; never in a process running several runs at once)."""
    import tempfile

    from core.stage_folders import work_sibling

    folder = work_sibling(out)
    before = tempfile.tempdir
    if temp_default:
        tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        if temp_default:
            tempfile.tempdir = before
        shutil.rmtree(folder, ignore_errors=True)


LOCK_NAME = "lock"


def checkpoint_in_use(folder: str | os.PathLike) -> bool:
    """Whether a run holds the checkpoint ``folder``'s lock now (``folder/lock``, a `filelock.FileLock` its run
    holds while it works: a swap's); False for a checkpoint without one."""
    from filelock import FileLock, Timeout

    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return False
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:          # another user's lock this user may not open: whether a run holds it cannot be told
        return False
    lock.release()
    return False


def checkpoint_lock(folder: str | os.PathLike):
    """The `filelock.FileLock` of a checkpoint folder (``folder/lock``): the group's to take too in a group-shared
    folder (`core.group_sharing`: a team's workspace, where one artist resumes another's run)."""
    from filelock import FileLock

    from core.group_sharing import lock_mode

    return FileLock(str(Path(folder) / LOCK_NAME), mode=lock_mode(Path(folder).parent))


_CHECKPOINT_NAME_RE = re.compile(r"^\.(?P<name>.+?)(?:\.(?P<tag>" + "|".join(t for t in CHECKPOINT_TAGS if t)
                                 + r"))?\.checkpoint$")


@dataclass(frozen=True)
class Found:
    """A leftover found under a folder (`find_leftovers`): whose output it is beside (``output``: the path the run
    was writing), what it is, its size in bytes."""

    output: Path
    leftover: Leftover
    bytes: int

    @property
    def state(self) -> str:
        """"running" (a process on this machine, or the checkpoint's lock held), "elsewhere" (a temporary one made
        on another machine sharing the disk: whether its run goes on cannot be told), or "stopped"."""
        left = self.leftover
        if left.alive:
            return "running"
        if left.kind == "temporary" and left.host not in (None, current_host()):
            return "elsewhere"
        return "stopped"


def find_leftovers(root: str | os.PathLike) -> list[Found]:
    """Every temporary sibling, working folder and checkpoint under ``root`` (`leftovers_of`'s kinds, whatever
    output they are beside), in path order; what is inside a leftover is not searched."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        names = sorted(dirs + files)
        outputs = {_output_of(n) for n in names if n.startswith(".")} - {None}
        taken = set()
        for name in sorted(outputs):
            for left in leftovers_of(here / name, names):
                try:
                    size = disk_size(left.path)
                except OSError:                            # gone meanwhile (its run finished), or unreadable
                    size = 0
                found.append(Found(here / name, left, size))
                taken.add(left.path.name)
        dirs[:] = sorted(d for d in dirs if d not in taken)
    return found


def _output_of(name: str) -> str | None:
    """The output a leftover's name is beside (its temporary name's key, or its checkpoint's output), else None."""
    fields = temp_name_fields(name)
    if fields is not None and fields["kind"] in ("tmp", "work"):
        return fields["name"]
    m = _CHECKPOINT_NAME_RE.match(name)
    return m["name"] if m else None


def disk_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of the files under a folder (links not followed)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def remove_leftover(found: Found) -> None:
    """Delete a stopped leftover (a folder whole); ValueError when it is running or on another machine."""
    if found.state != "stopped":
        raise ValueError(f"{found.leftover.path}: {found.state}: not removed")
    path = found.leftover.path
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
