"""Stage folders replaced whole, or not at all (ARCHITECTURE.md, "Data on disk").

Files are written atomically (``core.storage.atomic_open``); a stage *folder* is made atomic here: a
stage writes its outputs into a sibling temporary folder ``.OUT.tmp-HOST-PID-XXXX`` and, on success, the
temporary folder is swapped in for ``OUT`` (old folder renamed aside, new one renamed in, old one
deleted). A failure, Ctrl-C or a kill leaves the previous ``OUT`` whole: a reader sees the old result
or the new one, never a mix. Temporary folders left by killed runs are removed by the next run; a run that
finds an older run still writing ``OUT`` stops (one writer per folder). Output *files* written whole and renamed
(an export, a swapped plate) take their temporary names from ``temp_sibling``, and are claimed by ``sole_writer``.

Each committed folder carries ``.doppel_stage.json`` naming the stage that wrote it, so that an
``--out`` that holds another stage's output (a rig folder given as a retarget's ``--out``) is refused
unless the caller passes ``force=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import DoppelError
from core.group_sharing import adopt_group_umask
from core.storage import new_temp_file, new_temp_folder, temp_name_part

STAGE_MARKER = ".doppel_stage.json"
# Bytes of a temporary name besides its output's name and suffix: "." ".tmp-" HOST (32) "-" PID "-" TIMENS (19) "_"
# and mkstemp's 8 letters, with a margin.
_TEMP_ROOM = 96
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|work)-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+"
                     r"(?:\.[A-Za-z0-9]+)?$")      # a temporary file keeps its output's suffix (writers choose by it)

CHECKPOINT_TAGS = ("", "swap", "shot", "fit", "ingest")   # kinds of checkpoint beside an output (`core.
                                         # leftovers.checkpoint_sibling`): "": a neural double's training or
                                         # distillation; swap: `doppel swap`'s; shot: `doppel render shot`'s; fit:
                                         # `doppel fit --frame all`'s (these three keep files under final names);
                                         # ingest: `doppel capture ingest`'s landmark cache
FINAL_NAME_TAGS = ("swap", "shot", "fit")   # checkpoints that keep files under their final names (above)
_NAMED_CHECKPOINT_RE = re.compile(r"^\.(?P<name>.+)\.(" + "|".join(FINAL_NAME_TAGS) + r")\.checkpoint$")

# Stages whose folders predate the marker: the manifest's "stage" field, or a layout, names them.
_MANIFEST_STAGES = {"capture_ingest": "capture ingest", "fit": "fit", "rig": "rig", "retarget": "retarget"}


class StageFolderError(DoppelError):
    """An ``--out`` folder that cannot be used for this stage (another stage's output, a file, an input)."""


def folder_stage(path: str | os.PathLike) -> str | None:
    """The stage that wrote folder ``path`` ("rig", "retarget", "capture synth", "demo", ...), None when the
    folder is empty or missing, "unknown" when it holds files that no Doppel stage wrote (or cannot be told)."""
    path = Path(path)
    if not path.is_dir() or not any(path.iterdir()):
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads((path / STAGE_MARKER).read_text(encoding="utf-8"))["stage"])
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        stage = json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("stage")
        if stage in _MANIFEST_STAGES:
            return _MANIFEST_STAGES[stage]
    if (path / "session" / "calibration.json").is_file() and (path / "ground_truth").is_dir():
        return "capture synth"
    if (path / "report.html").is_file() and (path / "actor" / "manifest.json").is_file():
        return "demo"
    return "unknown"


def check_stage_out(out: str | os.PathLike, stage: str, force: bool = False,
                    inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an ``--out`` folder this stage must not replace; returns ``out`` (symlinks resolved).

    Refused, even with ``force``: ``out`` is an existing file, the current folder or one above it, an input of
    the stage or a folder that holds one (a folder inside an input is fine), or where this user may not write
    (PermissionError, ``check_writable_out``). Refused without ``force``: ``out`` holds another stage's output, or
    files no Doppel stage wrote. Raises StageFolderError (one line, names the fix).
    """
    out = Path(out)
    shown = out
    if out.is_symlink():
        out = out.resolve()
    if out.exists() and not out.is_dir():
        raise StageFolderError(f"--out {shown}: exists and is a file; give a folder (new or a previous "
                               f"{stage} output)")
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise StageFolderError(f"--out {shown}: is the current folder (or holds it); give a sub-folder")
    for inp in inputs:
        r = Path(inp).resolve()
        if r == real or real in r.parents:
            raise StageFolderError(f"--out {shown}: replacing it would delete the input {inp}; give another folder")
    check_writable_out(out, shown)
    found = folder_stage(out)
    if found is None or found == stage or force:
        return out
    what = "files that no Doppel stage wrote" if found == "unknown" else f"a `doppel {found}` output"
    raise StageFolderError(f"--out {shown}: holds {what}; give another folder, or --force to replace it")


def check_writable_out(out: str | os.PathLike, shown: str | os.PathLike | None = None) -> None:
    """PermissionError (one line, naming ``shown`` or ``out``) when this user cannot write where ``out`` (a file or
    a folder, made with its missing parents) goes: checked before a stage's work, where it failed only when the
    outputs were written (a swap after its whole tracking pass)."""
    out = Path(out)
    nearest = next(p for p in (out, *out.parents) if p.exists())
    folder = nearest if nearest.is_dir() else nearest.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {shown or out}: no write permission in {folder}")


@contextlib.contextmanager
def output_parent(out: str | os.PathLike) -> Iterator[Path]:
    """Make the missing folders above the file ``out`` (as a stage command makes its OUT's), yield ``out``; when
    the block raises, the folders made here that are still empty are removed again (a refused or failed export
    leaves no empty folder behind)."""
    out = Path(out)
    check_writable_out(out)
    made = [p for p in out.parents if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        for folder in made:                          # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()                       # only when empty
        raise


@contextlib.contextmanager
def staged_stage_dir(out: str | os.PathLike, stage: str, force: bool = False,
                     inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield an empty sibling temporary folder to write a stage's outputs into; on a clean exit it replaces
    ``out`` whole. On an exception (or Ctrl-C) only the temporary folder is removed and ``out`` keeps its old
    content; after a kill, the next run removes it (``clean_stale``).

    Checks ``out`` first (``check_stage_out``: refuses another stage's folder unless ``force``).
    Paths written inside the block are under the yielded folder; after the block they are under ``out``.
    """
    out = check_stage_out(out, stage, force, inputs)
    follow_shared_folder(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
        tmp = new_temp_folder(out.parent, _temp_prefix(out))     # the mode mkdir() gives: umask or default ACL
    except OSError as e:       # name the folder the user gave, not a temporary name
        raise OSError(e.errno, f"{e.strerror} (writing the --out folder {out})", str(out.parent)) from e
    _refuse_a_second_writer(out, tmp)
    try:
        yield tmp
        (tmp / STAGE_MARKER).write_text(json.dumps({"stage": stage}) + "\n", encoding="utf-8")
        _swap_in(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        shown = [_final_path(f, tmp, out) for f in (e.filename, e.filename2)]   # a copy's: source, destination
        if shown != [None, None]:    # name the files by their final paths, not the temporary folder's
            raise OSError(e.errno, e.strerror, shown[0] or e.filename, None, shown[1] or e.filename2) from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_sibling(out: str | os.PathLike, directory: bool = False) -> Path:
    """A new empty temporary file (or folder) beside ``out`` to write it in, then rename over it:
    ``.OUT.tmp-HOST-PID-TIMENS_XXXX`` (a file keeps OUT's suffix). A run killed before the rename leaves it; the
    next writer of ``out`` removes it first (``clean_stale``), where names without their owner (mkstemp's) piled
    up: a killed swap's whole plate, gigabytes at 4K."""
    out = Path(out)
    if not _in_own_temp_folder(out):     # there no killed run can have left anything: no listing per frame
        follow_shared_folder(out)
        clean_stale(out)
    prefix = _temp_prefix(out)
    if directory:
        return new_temp_folder(out.parent, prefix)
    fd, path = new_temp_file(out.parent, prefix, out.suffix)     # the mode open() gives: umask or default ACL
    os.close(fd)
    return path


def work_sibling(out: str | os.PathLike) -> Path:
    """A new empty working folder beside ``out`` for what a run makes on its way to ``out`` (``.OUT.work-HOST-PID-
    TIMENS_XXXX``): never renamed into place; a killed run's is removed by the next writer of ``out``
    (``clean_stale``) and found by a consent's purge (`core.leftovers`). Absolute, whatever ``out`` is: a
    relative one handed to a worker process started elsewhere (Blender's, in Doppel's folder) named another place."""
    out = Path(out).absolute()
    follow_shared_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    return new_temp_folder(out.parent, f".{_temp_key(out)}.work-{_owner()}-{time.time_ns()}_")


def follow_shared_folder(out: str | os.PathLike) -> None:
    """Writing into a group-shared folder (`core.group_sharing`: a team's workspace, or any project folder set up
    so), outside any workspace command too: what this process makes there is the group's."""
    nearest = next((p for p in Path(out).absolute().parents if p.exists()), None)
    if nearest is not None:
        adopt_group_umask(nearest)


def _in_own_temp_folder(path: Path) -> bool:
    """Whether ``path`` is in a temporary folder this process made (``temp_sibling(directory=True)``): a frame of
    a sequence being written. Signing each frame cleaned up after killed runs by listing the folder, so a sequence
    of N frames listed N^2/2 names (4000 frames: 31 s)."""
    m = _TMP_RE.match(path.parent.name)
    return bool(m) and m["kind"] == "tmp" and m["host"] == _host() and int(m["pid"]) == os.getpid()


def temp_files_of(out: str | os.PathLike) -> list[Path]:
    """The temporary files (``temp_sibling``'s, and ``sole_writer``'s claims) of output ``out`` beside it, whoever
    made them: for a caller that knows no run is writing ``out``."""
    out = Path(out)
    found = []
    for p in sorted(out.parent.iterdir()) if out.parent.is_dir() else []:
        m = _TMP_RE.match(p.name)
        if m and m["name"] == _temp_key(out) and m["kind"] == "tmp" and p.is_file():
            found.append(p)
    return found


def _refuse_a_second_writer(out: Path, mine: Path) -> None:
    """StageFolderError (and ``mine`` removed) when another run, started before this one and still alive (on this
    machine; one on another machine sharing the disk cannot be told dead), is writing ``out``: two runs into one
    folder would both report success while the last one's result replaced the other's. Of two runs started
    together the first to make its temporary folder (or, for a file, its claim) goes on."""
    def order(p: Path) -> tuple[int, str]:
        started = re.search(r"-(\d{16,})_[A-Za-z0-9_]*$", p.name)
        return (int(started[1]) if started else 0, p.name)

    for p in sorted(out.parent.iterdir(), key=order):
        m = _TMP_RE.match(p.name)
        if p == mine or order(p) > order(mine):
            break
        if not m or m["name"] != _temp_key(out) or m["kind"] != "tmp" or p.is_dir() != mine.is_dir():
            continue
        if m["host"] == _host() and not _alive(int(m["pid"])):
            continue                         # a killed run's (clean_stale removes it)
        _release(mine)
        since = order(p)[0]
        when = f", since {time.strftime('%H:%M:%S', time.localtime(since / 1e9))}" if since else ""
        raise StageFolderError(f"--out {out}: another run is writing it (process {m['pid']} on {m['host']}"
                               f"{when}); wait for it to finish or give another --out (if no such run is going "
                               f"on, delete {p})")


def _release(mine: Path) -> None:
    if mine.is_dir():
        shutil.rmtree(mine, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            mine.unlink()


@contextlib.contextmanager
def sole_writer(out: str | os.PathLike) -> Iterator[Path]:
    """Claim the output *file* ``out`` for the block: StageFolderError (one line) when another live run on this
    machine (or any run on another machine) claimed it first, as ``staged_stage_dir`` does for folders. Two
    `doppel export --out same.fbx` started together both reported success, and the file was the last one's.

    The claim is an empty file ``.NAME.tmp-HOST-PID-TIMENS_c`` beside ``out``, removed on exit; a killed run's
    is removed by the next claim. Yields ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    mine = out.parent / f"{_temp_prefix(out)}c"
    mine.touch(exist_ok=False)
    try:
        _refuse_a_second_writer(out, mine)
        yield out
    finally:
        _release(mine)


def shown_path(path: str | os.PathLike) -> Path:
    """``path`` as a person should read it: a stage's temporary folder (``.OUT.tmp-HOST-PID-XXXX``) in it is shown
    as the folder it becomes (OUT), so messages written while a stage runs name the final files (an OUT whose
    temporary names had to be shortened, `_temp_key`, shows as its head and hash); a swap's or a shot's checkpoint
    folder, which keeps its outputs under their final names (``.OUT.swap.checkpoint/OUT/...``), is left out."""
    parts = list(Path(path).parts)
    for i, part in enumerate(parts):
        m = _TMP_RE.match(part)
        if m and m["kind"] == "tmp":
            parts[i] = m["name"]
    # a checkpoint's folders and OUT itself are under final names; its own files (a swap's tracking.npz) are shown
    # where they are
    parts = [p for i, p in enumerate(parts) if not _under_final_names(p, parts[i + 1:])]
    return Path(*parts) if parts else Path(path)


def _under_final_names(part: str, after: list[str]) -> bool:
    """Whether ``part`` is a checkpoint folder ``.OUT.TAG.checkpoint`` whose ``after`` (the rest of the path) is
    published under its final name: OUT, or anything in a folder of it (OUT/, OUT's side folder)."""
    m = _NAMED_CHECKPOINT_RE.match(part)
    return m is not None and (len(after) > 1 or after == [m["name"]])


def _final_path(filename, tmp: Path, out: Path) -> str | None:
    """``filename`` (a path inside ``tmp``) as the path it would have under ``out``; a path in a run's checkpoint
    that keeps files under their final names (a shot's frames) or in a temporary sibling, as `shown_path` shows
    it; None when it is neither."""
    if not isinstance(filename, str | os.PathLike):
        return None
    try:
        return str(out / Path(filename).relative_to(tmp))
    except ValueError:
        shown = shown_path(filename)
        return str(shown) if shown != Path(filename) else None


def _swap_in(new: Path, out: Path) -> None:
    """Rename ``out`` aside (if present), ``new`` to ``out``, then delete the old folder."""
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{_temp_key(out)}.old-{_owner()}-", dir=out.parent))
    os.rename(out, old)                  # replaces the empty placeholder made by mkdtemp
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)              # put the old result back
        raise
    shutil.rmtree(old, ignore_errors=True)


def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove temporary folders of ``out`` left by runs that were killed (their process is gone), and put
    back an old folder a kill left renamed aside mid-swap. Returns the paths removed or restored."""
    out = Path(out)
    done: list[Path] = []
    if not out.parent.is_dir():
        return done
    for p in sorted(out.parent.iterdir()):
        m = _TMP_RE.match(p.name)
        if not m or m["name"] != _temp_key(out) or m["host"] != _host() or _alive(int(m["pid"])):
            continue    # another output, or a run in progress (here, or on another machine sharing the disk)
        if not p.is_dir():
            if m["kind"] == "tmp":       # a killed writer's file (``temp_sibling``: a whole plate, an export)
                done.extend(clean_stale(p))     # and its own temporary copy (a plate being signed when killed)
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                done.append(p)
            continue
        if m["kind"] == "old" and not out.exists():
            os.rename(p, out)
        else:
            shutil.rmtree(p, ignore_errors=True)
        done.append(p)
    return done


def temp_name_fields(name: str) -> dict | None:
    """The fields of a temporary name (``temp_sibling``'s, ``sole_writer``'s claim, a folder renamed aside,
    ``work_sibling``'s):
    {name (its output's `temp_key`), kind ("tmp", "old" or "work"), host, pid, time_ns (when it was begun; None when the
    name does not say)}; None for any other name."""
    m = _TMP_RE.match(name)
    if not m:
        return None
    started = re.search(r"-(\d{16,})_[A-Za-z0-9_]*(?:\.[A-Za-z0-9]+)?$", name)
    return {"name": m["name"], "kind": m["kind"], "host": m["host"], "pid": int(m["pid"]),
            "time_ns": int(started[1]) if started else None}


def running_here(host: str, pid: int) -> bool:
    """Whether the process that made a temporary name runs on this machine now (one on another machine sharing
    the disk cannot be asked: False)."""
    return host == _host() and _alive(pid)


def current_host() -> str:
    """This machine's name as temporary names carry it (`_host`)."""
    return _host()


def temp_key(out: str | os.PathLike) -> str:
    """The part of ``out``'s temporary names that says whose they are (`_temp_key`)."""
    return _temp_key(Path(out))


def _host() -> str:
    """This machine's name as it appears in temporary folder names (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"


def _temp_prefix(out: Path) -> str:
    """``.OUT.tmp-HOST-PID-TIMENS_``: how a temporary name of ``out`` begins (whose it is, and when it began)."""
    return f".{_temp_key(out)}.tmp-{_owner()}-{time.time_ns()}_"


def _temp_key(out: Path) -> str:
    """The part of ``out``'s temporary names that says whose they are: its name, shortened (head and hash) when
    the temporary name would not fit the file system (`core.storage.temp_name_part`)."""
    return temp_name_part(out.name, _TEMP_ROOM + len(out.suffix))


def _owner() -> str:
    """HOST-PID: who owns a temporary folder (only this machine can tell whether the process is gone)."""
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine: one that exists and is not a zombie (a killed process whose
    parent has not reaped it: for ever in a container whose first process reaps no orphans, where a killed run's
    leftovers were then "running" and never cleaned or purged)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]      # the field after the command's name
    except (OSError, IndexError):
        return True                                               # no /proc: as os.kill said
    return state not in (b"Z", b"X")

