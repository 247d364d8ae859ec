"""The checkpoint folder of a resumable run (a swap's, a shot's): its key, its lock, whose likeness it holds.

``.OUT.TAG.checkpoint/`` beside OUT (`core.leftovers.checkpoint_sibling`) holds key.json (what the run depends on,
`core.run_keys`), owners.json (the consents it works under, for a purge: `core.leftovers.record_owner`) and lock
(held while the run works: a second run into the same OUT is refused). What else it keeps is the run's own
(`RunCheckpoint` subclasses). Used as a context manager, a run's checkpoint goes when the run finishes and stays
when it stops part-way with work in it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from core.leftovers import LOCK_NAME, OWNERS_NAME, checkpoint_lock, checkpoint_sibling, record_owner
from core.run_keys import key_difference
from core.stage_folders import follow_shared_folder
from core.storage import atomic_write_json

log = logging.getLogger(__name__)

KEY_NAME = "key.json"


class RunCheckpoint:
    """The checkpoint of one run into ``out``, held for the run's length. tag: its kind (`CHECKPOINT_TAGS`);
    what: the run in words ("swap", "shot"); words: `key_difference`'s names of the key's parts.

    ``resume``: True: go on from what an earlier run of the same key left (ValueError, one line, when what is
    there was made with other inputs or options); "auto": go on from it when it is of the same key, else start over
    (a batch task retried after its worker was lost); False: anything there is removed first."""

    def __init__(self, out: str | Path, tag: str, key: dict, resume: bool | str, what: str,
                 words: dict[str, str] | None = None):
        from filelock import Timeout

        if resume not in (True, False, "auto"):
            raise ValueError(f"resume must be True, False or 'auto', got {resume!r}")
        self.out, self.key, self.what, self._words = Path(out), key, what, words
        self.folder = checkpoint_sibling(self.out, tag)
        follow_shared_folder(self.folder)      # made before the stage's folder: the group's in a shared folder too
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = checkpoint_lock(self.folder)
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(f"--out {self.out}: another {what} into it is running (its checkpoint {self.folder} "
                             "is locked); wait for it to finish or give another --out") from None
        except PermissionError as e:
            raise PermissionError(e.errno, f"the checkpoint {self.folder} of an earlier {what} into {self.out} "
                                  f"cannot be taken over by this user ({e.strerror}: made by another user, outside a "
                                  "folder shared with their group); ask them to run it again, or remove it",
                                  e.filename) from None
        self.resumed = bool(resume) and self._resumable(strict=resume is True)
        if not self.resumed:
            if not resume and self._kept_work():
                log.warning("%s: the checkpoint of an interrupted %s into %s is discarded: starting over (the "
                            "same command with --resume would have gone on from it)", self.folder, what, self.out)
            self._clear()
            atomic_write_json(self.folder / KEY_NAME, key)
        record_owner(self.folder)

    def _resumable(self, strict: bool) -> bool:
        try:
            before = json.loads((self.folder / KEY_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if strict:
                log.warning("--resume: no checkpoint of an earlier %s into %s; starting from the beginning",
                            self.what, self.out)
            return False
        if before == self.key:
            return True
        why = key_difference(before, self.key, self._words)
        if not strict:
            log.info("%s: a checkpoint of a %s with other inputs or options (%s differs): starting over",
                     self.folder, self.what, why)
            return False
        self._lock.release()
        raise ValueError(f"--resume: the checkpoint {self.folder} is of a {self.what} with other inputs or options "
                         f"({why} differs); give the same ones, or run without --resume to start over")

    def _kept_work(self) -> bool:
        """Whether the folder holds more than a run's key, owners and lock (work an earlier run kept)."""
        return any(p.name not in (KEY_NAME, OWNERS_NAME, LOCK_NAME) for p in self.folder.iterdir())

    def _clear(self) -> None:
        for p in self.folder.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def __enter__(self) -> RunCheckpoint:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving the block normally (the run published its output) removes the folder; leaving it by an exception
        (a failure, Ctrl-C, SIGTERM) keeps it when it `holds_work`, after `save_on_stop`."""
        finished = exc_type is None
        if not finished:
            self.save_on_stop()
        self.release(finished or not self.holds_work())

    def holds_work(self) -> bool:
        """Whether the folder holds work worth resuming from (default: more than its key, owners and lock)."""
        return self._kept_work()

    def save_on_stop(self) -> None:
        """What the run keeps on disk when it stops by an exception, before `holds_work` is asked (default: nothing)."""

    def release(self, remove: bool) -> None:
        """Release the lock; ``remove``: the folder too (the run finished, or kept nothing worth resuming)."""
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._lock.release()
