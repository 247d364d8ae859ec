"""A shot's checkpoint: what a killed or interrupted `doppel render shot` keeps so that `--resume` goes on from it.

A shot on the CPU draws a frame in seconds (7.6 s at 512 px with the default jitter, a two-member double): a
240-frame shot of four cameras is two hours, lost whole to a kill when the frames lived only in the run's
temporary folder. ``.OUT.shot.checkpoint/`` beside OUT (`core.run_checkpoint.RunCheckpoint`: key.json, owners.json,
lock) holds:

* OUT/CAMERA/NNNN.png and .exr (and their disclosure): the frames written so far, each whole and disclosed, under
  their final names (messages name them as they will be: `core.stage_folders.shown_path`);
* shot.json: per camera, how many of its frames (in order) are written whole; rewritten at most every
  `SAVE_EVERY_S` seconds and when the run stops (Ctrl-C, SIGTERM, an error): a kill loses at most that much.

A resumed shot draws the frames after those kept, and each camera's movie again from the kept frames' EXRs and
the new ones (`neural_render.shot.movie_frame`): the shot it writes is the one an uninterrupted run writes. The
folder's frames are moved into the published shot; a finished shot removes the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

from core.leftovers import checkpoint_sibling
from core.run_checkpoint import RunCheckpoint
from core.run_keys import files_digest, input_identity
from core.storage import atomic_write_json

log = logging.getLogger(__name__)

TAG = "shot"
SAVE_EVERY_S = 2.0
STATE_NAME = "shot.json"
_WORDS = {"model": "the model", "weights": "the model's weights", "calibration": "the calibration file",
          "rig": "the rig", "anim": "the animation", "disclosure": "the disclosure", "provenance": "the consent"}


def checkpoint_folder(out: str | Path) -> Path:
    """Where the checkpoint of a shot into ``out`` lives."""
    return checkpoint_sibling(out, TAG)


def shot_key(model_dir: Path, calibration: Path, rig_dir: Path | None, anim_dir: Path | None, options: dict,
             disclosure: dict, provenance: dict) -> dict:
    """What a shot's frames depend on, as JSON: its inputs by identity (`core.run_keys`), ``options`` (cameras,
    frames, renderer, size, jitter, recentre: not the device nor the views per call, which change a frame's last
    bits at most), ``disclosure`` (provenance on or off, the label) and the consent it runs under."""
    from doppel.shot_stage import model_weights

    weights = [w for w in model_weights(model_dir) if w.is_file()]
    return {"model": input_identity(model_dir), "weights": files_digest(weights) if weights else None,
            "calibration": input_identity(calibration), "rig": input_identity(rig_dir),
            "anim": input_identity(anim_dir), "options": options, "disclosure": disclosure,
            "provenance": {k: provenance.get(k) for k in ("actor", "consent", "production")}}


def saved_counts(folder: Path) -> dict[str, int]:
    """Per camera, the frames a shot's checkpoint ``folder`` counts as written whole (its shot.json; {} when it is
    missing or unreadable)."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        return {str(k): int(v) for k, v in
                json.loads((Path(folder) / STATE_NAME).read_text(encoding="utf-8"))["done"].items()}
    return {}


class ShotCheckpoint(RunCheckpoint):
    """The checkpoint of one shot into ``out`` (the module's layout), held for the run's length; ``resume`` as
    `core.run_checkpoint.RunCheckpoint`'s. Use it as a context manager: leaving the block by an exception keeps
    what was written (`save_last`), leaving it normally (the shot published) removes it."""

    def __init__(self, out: str | Path, key: dict, resume: bool | str):
        super().__init__(out, TAG, key, resume, "shot", _WORDS)
        self.frames = self.folder / self.out.name            # OUT's camera folders, under OUT's own name
        self._done = saved_counts(self.folder) if self.resumed else {}   # kept if the run fails before `kept`
        self._saved_at = 0.0

    def kept(self, names: dict[str, list[str]]) -> dict[str, int]:
        """Per camera, how many of its first frames a resumed shot keeps: as shot.json counted them, fewer when
        a file is missing. names: per camera, its frames' file stems in order ("0012")."""
        if not self.resumed:
            return {}
        state, kept = saved_counts(self.folder), {}
        for cam, stems in names.items():
            n = 0
            for stem in stems[:state.get(cam, 0)]:
                if not all((self.frames / cam / f"{stem}{s}").is_file() for s in (".png", ".exr")):
                    break
                n += 1
            kept[cam] = n
        self._done = {c: n for c, n in kept.items() if n}
        return kept

    def frame_done(self, camera: str, count: int) -> None:
        """``camera``'s first ``count`` frames are written whole: kept on disk at most every `SAVE_EVERY_S` s, and
        by `save_last` when the run stops."""
        self._done[camera] = count
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.save_last()

    def save_last(self) -> None:
        """Keep what the last `frame_done` calls said."""
        atomic_write_json(self.folder / STATE_NAME, {"done": self._done})
        self._saved_at = time.monotonic()

    def holds_work(self) -> bool:
        return bool(self._done)

    def save_on_stop(self) -> None:
        if self._done:
            with contextlib.suppress(OSError):      # a full disk must not hide the error that stopped the shot
                self.save_last()


def resume_hint(out: str | Path) -> str | None:
    """What to tell a user whose shot into ``out`` was interrupted (None when it kept no frame)."""
    folder = checkpoint_folder(out)
    done = sum(saved_counts(folder).values())
    if not done:
        return None
    return f"its first {done} frame(s) are kept in {folder}: the same command with --resume goes on from there"
