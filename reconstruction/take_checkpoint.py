"""A take's fit checkpoint: what a killed or interrupted `doppel fit --frame all` keeps so that `--resume` goes on.

A take is fitted frame after frame (the first about 40 s with the default stages and detail, each later one about
9 s on 2 cores: a 200-frame take is half an hour, lost whole to a kill when the frames lived only in the run's
temporary folder), each later frame started from the two before it.
``.OUT.fit.checkpoint/`` beside OUT (`core.run_checkpoint.RunCheckpoint`: key.json, owners.json, lock) holds:

* OUT/: the fit folder as the run writes it (the first frame at its top, with its report; later frames in
  frames/FRAME/), under OUT's own name so that messages name files as they will be (`core.stage_folders.shown_path`);
* take.json: the frames fitted whole, in the take's order, with their landmark error, time and the views that
  saw the person; rewritten after every frame (a kill loses the frame being fitted at most).

A resumed fit reads the last two kept frames' params.json back (JSON holds their float64 numbers exactly) and fits
the frames after them: the fit folder it publishes is the one an uninterrupted run writes. A finished fit moves the
folder's files into its output and removes the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

from core.fileio import read_json_object
from core.leftovers import checkpoint_sibling
from core.run_checkpoint import RunCheckpoint
from core.run_keys import input_identity
from core.storage import atomic_write_json

log = logging.getLogger(__name__)

TAG = "fit"
STATE_NAME = "take.json"
_WORDS = {"session": "the capture session", "landmarks": "the landmarks (ingest) folder", "model": "the body model",
          "model_file": "the model file", "landmark_embedding": "the landmark embedding",
          "provenance": "the consent"}


def checkpoint_folder(out: str | Path) -> Path:
    """Where the checkpoint of a take's fit into ``out`` lives."""
    return checkpoint_sibling(out, TAG)


def take_key(session: Path, landmarks: Path, model: str, model_file: Path | None, landmark_embedding: Path | None,
             options: dict, provenance: dict) -> dict:
    """What a take's fitted frames depend on, as JSON: the session, the ingest and the model files by identity
    (`core.run_keys`), ``options`` (stages, weights, correspondences, detail: not the device, which changes a
    fit's last bits at most) and the consent it runs under."""
    return {"session": input_identity(session), "landmarks": input_identity(landmarks), "model": model,
            "model_file": input_identity(model_file), "landmark_embedding": input_identity(landmark_embedding),
            "options": options, "provenance": {k: provenance.get(k) for k in ("actor", "consent", "production")}}


def saved_frames(folder: Path) -> dict[str, dict]:
    """The frames a take checkpoint ``folder`` counts as fitted whole, in order: name -> {"reprojection_px",
    "seconds", "views_seeing_person"} ({} when take.json is missing or unreadable)."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
        data = json.loads((Path(folder) / STATE_NAME).read_text(encoding="utf-8"))
        return {str(name): dict(data["frames"][name]) for name in data["done"]}
    return {}


def frame_folder(fit_folder: Path, index: int, frame: str) -> Path:
    """Where frame ``index`` (named ``frame``) of a take lives in its fit folder: the first at the top, later ones
    in frames/FRAME/."""
    return fit_folder if index == 0 else fit_folder / "frames" / frame


class TakeCheckpoint(RunCheckpoint):
    """The checkpoint of one take's fit into ``out`` (the module's layout), held for the run's length; ``resume``
    as `core.run_checkpoint.RunCheckpoint`'s. Use it as a context manager: leaving the block by an exception keeps
    the frames fitted whole; leaving it normally (the fit published) removes it."""

    def __init__(self, out: str | Path, key: dict, resume: bool | str):
        super().__init__(out, TAG, key, resume, "take's fit", _WORDS)
        self.fit_folder = self.folder / self.out.name
        self._done: dict[str, dict] = {}

    def kept(self, frames: list[str]) -> dict[str, dict]:
        """The first frames of the take (``frames``: its frame names in order) that a resumed fit keeps, as
        `saved_frames` gives them: those take.json counts, fewer when one's params or metrics cannot be read
        (missing, or damaged since: that frame is fitted again, and said). What a killed run left of the frames
        after them is removed."""
        saved = saved_frames(self.folder) if self.resumed else {}
        kept: dict[str, dict] = {}
        for i, frame in enumerate(frames):
            where = frame_folder(self.fit_folder, i, frame)
            problem = _unreadable(where) if frame in saved else "not fitted"
            if problem:
                if frame in saved:
                    log.warning("take checkpoint: frame %r is fitted again (%s)", frame, problem)
                break
            kept[frame] = saved[frame]
        self._done = dict(kept)
        if not kept:
            shutil.rmtree(self.fit_folder, ignore_errors=True)
        else:                 # the later frames' folders: a killed run's part of the frame it was fitting
            for frame in frames[len(kept):]:
                shutil.rmtree(self.fit_folder / "frames" / frame, ignore_errors=True)
        return kept

    def frame_done(self, frame: str, row: dict) -> None:
        """``frame`` (the next of the take) is fitted and its folder written whole: kept on disk now, with ``row``
        (its landmark error, time and the views that saw the person, as JSON)."""
        self._done[frame] = dict(row)
        atomic_write_json(self.folder / STATE_NAME, {"done": list(self._done), "frames": self._done})

    def holds_work(self) -> bool:
        return bool(self._done)


def _unreadable(folder: Path) -> str | None:
    """Why a kept frame's ``folder`` cannot start the frames after it (its params.json or metrics.json missing
    or not readable), None when it can."""
    from reconstruction.fit_folder import FitFolder

    try:
        params = FitFolder(folder).read_params()
        if params.pose is None or params.root_translation is None:
            return f"{folder / 'params.json'}: no pose"
        read_json_object(folder / "metrics.json", "fit metrics")
    except (OSError, ValueError, TypeError) as e:
        return str(e)
    return None


def resume_hint(out: str | Path) -> str | None:
    """What to tell a user whose take's fit into ``out`` was interrupted (None when it kept no frame)."""
    folder = checkpoint_folder(out)
    done = len(saved_frames(folder))
    if not done:
        return None
    return f"its first {done} frame(s) are fitted and kept in {folder}: the same command with --resume goes on " \
           "from there"
