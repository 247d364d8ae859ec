"""A swap's checkpoint: what a killed or interrupted swap keeps so that `--resume` goes on from it.

``.OUT.swap.checkpoint/`` beside OUT (`core.leftovers.checkpoint_sibling`; whose likeness it holds in its
owners.json, for a consent's purge) holds:

* key.json: what the swap depends on (`run_key`: the plate's files, the double's folders, the options, given
  landmarks, the performer); a resume with other inputs or options is refused;
* tracking.npz: the tracking pass, the solve and the detector-bias pass (a quarter to a half of a swap's time),
  written once they are done: any resumed swap skips them;
* for a plate of frames (a video cannot be appended to), the comp pass as it goes: OUT/ (the swapped frames
  written so far, each whole, signed and marked), OUT_swap/strips/ and OUT_swap/matte/ (under their own names, so
  that messages name them as they will be: `core.stage_folders.shown_path`), and comp.json (the first frame not yet
  written, the QC of those written and each shot's colour matcher as it stood, so the colour transfer, smoothed
  over time, goes on as if never stopped). comp.json is rewritten at most every `SAVE_EVERY_S` seconds: a kill
  loses at most that much work; the frames after it are written again.

A run holds lock while it works; a second swap into the same OUT is refused. A finished swap removes the folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from capture.plate_io import PlateInfo
from core.leftovers import checkpoint_sibling
from core.run_checkpoint import RunCheckpoint
from core.run_keys import files_digest, folder_digest
from core.storage import atomic_write_bytes, atomic_write_json
from doppel.face_swap.swap import FrameQC, ShotLandmarks, SwapConfig
from reconstruction.head_tracking import HeadTrack

log = logging.getLogger(__name__)

TAG = "swap"
SAVE_EVERY_S = 2.0
_NOT_IN_KEY = ("workers", "prefetch")         # the output is the same for any number


def checkpoint_folder(out: str | Path) -> Path:
    """Where the checkpoint of a swap into ``out`` lives."""
    return checkpoint_sibling(out, TAG)


def run_key(info: PlateInfo, double, cfg: SwapConfig, landmarks: np.ndarray | None, performer,
            disclosed: bool) -> dict:
    """What a swap's result depends on, as JSON: a checkpoint is resumed only by a swap of the same key."""
    plate = Path(info.path)
    files = list(info.frames) if info.kind == "frames" and info.frames else [plate]
    who = None
    if performer is not None:
        src = getattr(performer, "source", None)
        who = {"name": getattr(performer, "name", None), "source": str(src) if src else None,
               "files": files_digest([Path(src)]) if src and Path(src).is_file() else None}
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in _NOT_IN_KEY}
    if cfg.lens is not None:
        options["lens"] = cfg.lens.key()
    return {"plate": {"path": str(plate.resolve()), "kind": info.kind, "frames": info.frame_count,
                      "size": [info.width, info.height], "colorspace": info.colorspace,
                      "files": files_digest(files)},
            "double": [{"path": str(Path(f).resolve()), "digest": folder_digest(Path(f))} for f in double.folders],
            "options": options, "disclosed": bool(disclosed), "performer": who,
            "landmarks": None if landmarks is None else hashlib.sha256(
                np.ascontiguousarray(landmarks, np.float32).tobytes()).hexdigest()}


_WORDS = {"plate": "the plate's files", "double": "the double", "landmarks": "--landmarks",
          "performer": "the performer", "disclosed": "the disclosure"}


class SwapCheckpoint(RunCheckpoint):
    """The checkpoint of one swap into ``out`` (the module's layout), held for the run's length; ``resume`` as
    `core.run_checkpoint.RunCheckpoint`'s."""

    def __init__(self, out: str | Path, key: dict, resume: bool | str):
        super().__init__(out, TAG, key, resume, "swap", _WORDS)
        self.frames = self.folder / self.out.name                     # OUT's frames, under OUT's own name
        self.side = self.folder / f"{self.out.stem if self.out.suffix else self.out.name}_swap"   # strips, matte
        self._saved_at = 0.0
        self.kept_frames = 0           # frames of the range a resumed comp took as written (`SwapResult`)
        self._last = None              # (next frame, qcs, how many of them, matchers) of the last `frame_done`

    # --- the tracking pass -----------------------------------------------------------------------------------
    def tracking(self) -> tuple[ShotLandmarks, HeadTrack, np.ndarray | None] | None:
        """(shot, track, bias) a resumed swap kept, or None."""
        path = self.folder / "tracking.npz"
        if not self.resumed or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return _shot_from(z), _track_from(z), z["bias"] if "bias" in z.files else None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:      # damaged on disk: tracked again
            log.warning("%s: unreadable (%s); tracking the plate again", path, e)
            return None

    def save_tracking(self, shot: ShotLandmarks, track: HeadTrack, bias: np.ndarray | None) -> None:
        buf = io.BytesIO()
        np.savez(buf, **_shot_arrays(shot), **_track_arrays(track), **({} if bias is None else {"bias": bias}))
        atomic_write_bytes(self.folder / "tracking.npz", buf.getvalue())

    # --- the comp pass (a plate of frames) ---------------------------------------------------------------------
    def comp(self) -> dict | None:
        """{"next": plate frame, "qcs": [FrameQC], "matchers": {shot: state}} a resumed swap kept, or None."""
        if not self.resumed or not self.frames.is_dir():
            return None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            state = json.loads((self.folder / "comp.json").read_text(encoding="utf-8"))
            return {"next": int(state["next"]), "qcs": [_qc_from(q) for q in state["qcs"]],
                    "matchers": {int(k): v for k, v in state["matchers"].items()}}
        return None

    def frame_done(self, next_frame: int, qcs: list[FrameQC], matchers: dict[int, object]) -> None:
        """Frames before ``next_frame`` are written whole, ``qcs`` theirs, ``matchers`` each shot's colour matcher
        as it stood: kept on disk at most every `SAVE_EVERY_S` s, and by `save_last` when the run stops."""
        self._last = (next_frame, qcs, len(qcs), dict(matchers))
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.save_last()

    def save_last(self) -> None:
        """Keep what the last `frame_done` said (a run stopped by Ctrl-C, SIGTERM or an error keeps every frame it
        wrote whole)."""
        if self._last is None:
            return
        next_frame, qcs, n, matchers = self._last
        atomic_write_json(self.folder / "comp.json", {
            "next": next_frame, "qcs": [_qc_json(q) for q in qcs[:n]],
            "matchers": {str(k): m.state() for k, m in matchers.items() if m is not None}})
        self._saved_at = time.monotonic()

    def published(self) -> None:
        """The plate is in place (its frames moved out): a resume after a later failure composites again."""
        (self.folder / "comp.json").unlink(missing_ok=True)

    def close(self, finished: bool) -> None:
        """Release the lock; a finished swap's checkpoint is removed, and so is one that kept nothing yet (it
        stopped before its tracking was done)."""
        self.release(finished or not (self.folder / "tracking.npz").is_file())


def _qc_json(q: FrameQC) -> dict:
    """A frame's QC as JSON (NaN, a passed-through frame's error, as null)."""
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in dataclasses.asdict(q).items()}


def _qc_from(d: dict) -> FrameQC:
    return FrameQC(**{k: float("nan") if v is None and k in ("error", "fit_error") else v for k, v in d.items()})


def _shot_arrays(shot: ShotLandmarks) -> dict:
    f = len(shot.landmarks)
    none = np.zeros(f, bool)
    p = shot.performer
    arrays = {"landmarks": shot.landmarks, "n_faces": shot.n_faces,
              "hands": np.concatenate([h.reshape(-1, 21, 2) for h in shot.hands]) if shot.hands
              else np.zeros((0, 21, 2), np.float32),
              "hand_counts": np.array([len(h.reshape(-1, 21, 2)) for h in shot.hands], np.int64),
              "from_crop": none if shot.from_crop is None else shot.from_crop,
              "backfilled": none if shot.backfilled is None else shot.backfilled,
              "cuts": np.array(shot.cuts, np.int64),
              "not_performer": none if shot.not_performer is None else shot.not_performer,
              "too_small": none if shot.too_small is None else shot.too_small,
              "performer_frame": np.int64(-1 if shot.performer_frame is None else shot.performer_frame)}
    for name in ("flow", "detected", "performer_crop"):
        if getattr(shot, name) is not None:
            arrays[name] = getattr(shot, name)
    if p is not None:
        arrays["performer"] = np.array(json.dumps({"name": p.name, "source": str(p.source) if p.source else None,
                                                   "known": bool(p.known)}))
        if p.thumbnail is not None:
            arrays["performer_thumbnail"] = p.thumbnail
    return arrays


@dataclasses.dataclass
class KeptPerformer:
    """Whom a resumed swap took for the performer, as its report and side folder show them (`Performer`'s
    name, source, known and thumbnail; nothing left to identify faces with: the tracking is done)."""

    name: str | None
    source: str | None
    known: bool
    thumbnail: np.ndarray | None = None


def _shot_from(z) -> ShotLandmarks:
    counts = z["hand_counts"]
    hands = np.split(z["hands"], np.cumsum(counts)[:-1]) if len(counts) else []
    performer = None
    if "performer" in z.files:
        p = json.loads(str(z["performer"]))
        performer = KeptPerformer(p["name"], p["source"], p["known"],
                                  z["performer_thumbnail"] if "performer_thumbnail" in z.files else None)
    frame = int(z["performer_frame"])
    return ShotLandmarks(z["landmarks"], z["n_faces"], [h.astype(np.float32) for h in hands],
                         z["flow"] if "flow" in z.files else None, z["detected"] if "detected" in z.files else None,
                         z["from_crop"], z["backfilled"], [int(c) for c in z["cuts"]], z["not_performer"],
                         z["too_small"], performer, None if frame < 0 else frame,
                         z["performer_crop"] if "performer_crop" in z.files else None)


def _track_arrays(t: HeadTrack) -> dict:
    return {"t_rotation": t.rotation, "t_translation": t.translation, "t_expression": t.expression,
            "t_valid": t.valid, "t_error": t.error, "t_focal_px": np.float64(t.focal_px),
            **({} if t.fit_error is None else {"t_fit_error": t.fit_error})}


def _track_from(z) -> HeadTrack:
    return HeadTrack(z["t_rotation"], z["t_translation"], z["t_expression"], z["t_valid"], z["t_error"],
                     float(z["t_focal_px"]), z["t_fit_error"] if "t_fit_error" in z.files else None)


def resume_hint(out: str | Path) -> str | None:
    """What to tell a user whose swap into ``out`` was interrupted (None when it kept nothing to go on from)."""
    folder = checkpoint_folder(out)
    if not (folder / "tracking.npz").is_file():
        return None
    done = ""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        done = f" and its first {int(json.loads((folder / 'comp.json').read_text())['next'])} frame(s)"
    return (f"its tracking{done} {'are' if done else 'is'} kept in {folder}: the same command with --resume goes "
            "on from there")
