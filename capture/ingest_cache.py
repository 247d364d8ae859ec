"""The landmark cache of `doppel capture ingest`, kept beside OUT so that a killed ingest loses no detection.

MediaPipe takes about a quarter of a second an image at 1024 px on 2 cores, more at 4096 px: a take of 200 frames
from 16 cameras is a quarter of an hour or more, lost whole to a kill when the detections lived in the run's
temporary folder. The detector caches each image's landmarks and mask by the image's content and its own
parameters (`capture.landmarks.LandmarkDetector`), so a cache is never stale: ``.OUT.ingest.checkpoint/cache``
(`core.run_checkpoint.RunCheckpoint`: a lock, and owners.json naming the consent, so that a purge deletes the
actor's masks in it) holds it while the ingest runs; the next ingest into OUT, killed or not, starts from it. A
finished ingest moves it into OUT/cache (where the next ingest into OUT takes it from, for an edited session).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.leftovers import checkpoint_sibling
from core.run_checkpoint import RunCheckpoint
from core.stage_folders import folder_stage

TAG = "ingest"
_KEY = {"cache": "landmarks and masks by image content and detector parameters"}


class LandmarkCache(RunCheckpoint):
    """The cache folder (``.path``) of one ingest into ``out``, held for the run's length (a second ingest into
    ``out`` is refused while it runs). Use it as a context manager: it starts from what a killed ingest left, or
    else from OUT/cache of a finished one; leaving the block by an exception keeps it for the next run."""

    def __init__(self, out: str | Path):
        super().__init__(out, TAG, _KEY, "auto", "capture ingest")
        self.path = self.folder / "cache"
        old = self.out / "cache"
        if not self.path.is_dir() and old.is_dir() and folder_stage(self.out) == "capture ingest":
            shutil.copytree(old, self.path)

    def move_into(self, stage_dir: Path) -> None:
        """The cache into the ingest's output folder (``stage_dir``: its staging folder), as OUT/cache."""
        if self.path.is_dir():
            os.replace(self.path, Path(stage_dir) / "cache")

    def holds_work(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())


def resume_hint(out: str | Path) -> str | None:
    """What to tell a user whose ingest into ``out`` stopped (Ctrl-C, a full disk): the images whose landmarks the
    cache kept, and that the same ingest goes on from them (no option needed); None when it kept none."""
    folder = checkpoint_sibling(out, TAG)
    try:
        n = sum(1 for p in (folder / "cache").iterdir() if p.suffix == ".npz")
    except OSError:
        return None
    if not n:
        return None
    return (f"the landmarks of {n} image(s) found so far are kept in {folder}: the same ingest into {Path(out).name} "
            "goes on from them")
