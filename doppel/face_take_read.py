"""Reading a face performance (a `doppel.face_take.FaceTake`) from a file: `doppel swap`'s face track
(``tracks.npz``: per frame the head's rotation in the plate camera and the expression weights solved on the
double's face; or the swap folder holding it), or facial capture in the ARKit CSV layout (`doppel.arkit_csv`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doppel.face_take import FaceTake, FaceTakeError

TRACKS_FILE = "tracks.npz"
DEFAULT_FPS = 24.0               # a take from one image has no frame rate


def is_face_take(path: str | Path) -> bool:
    """Whether ``path`` is a face performance: a swap's face track (a ``tracks.npz`` file, or a folder holding
    one) or a facial capture in the ARKit CSV layout (`doppel.arkit_csv`)."""
    from doppel.arkit_csv import is_arkit_csv

    p = Path(path)
    return (p.is_file() and p.name == TRACKS_FILE) or (p.is_dir() and (p / TRACKS_FILE).is_file()) or \
        is_arkit_csv(p)


def read_face_take(path: str | Path, fps: float | None = None) -> FaceTake:
    """The face take in a swap's ``tracks.npz`` (or the swap folder holding it), or in an ARKit CSV file (fps: its
    frame rate when the file cannot tell, `doppel.arkit_csv.read_arkit_csv`). FaceTakeError (one line) for a
    file without the arrays a take needs (a swap's from before expressions were written as rig controls)."""
    from doppel.arkit_csv import is_arkit_csv, read_arkit_csv

    p = Path(path)
    if is_arkit_csv(p):
        return read_arkit_csv(p, fps)
    f = p / TRACKS_FILE if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{p}: no {TRACKS_FILE} (a `doppel swap` output folder's face track)")
    data = _read_track_arrays(f)
    R = np.asarray(data["rotation"], np.float64)
    w = np.asarray(data["rig_blendshape_weights"], np.float64)
    valid = np.asarray(data["valid"]).reshape(-1)
    F = R.shape[0] if R.ndim else 0
    names = np.asarray(data["rig_blendshape_names"]).reshape(-1)
    if F < 1 or R.shape != (F, 3, 3) or w.shape != (F, len(names)) or valid.shape != (F,):
        raise FaceTakeError(f"{f}: rotation must be (F, 3, 3), the weights (F, {len(names)}) and valid (F,); got "
                            f"{R.shape}, {w.shape} and {valid.shape}")
    if not (np.isfinite(R).all() and np.isfinite(w).all()):
        raise FaceTakeError(f"{f}: its rotations or weights are not finite")
    fps = float(data["fps"])
    first = int(np.asarray(data["frame"]).reshape(-1)[0]) if "frame" in data else 0
    cuts = [int(c) - first for c in np.asarray(data.get("cuts", [])).reshape(-1)]
    jaw = np.asarray(data["jaw_rad"], np.float64).reshape(-1) if "jaw_rad" in data else None
    if jaw is not None and (jaw.shape != (F,) or not np.isfinite(jaw).all()):
        raise FaceTakeError(f"{f}: jaw_rad must be (F,) = ({F},) and finite, got {jaw.shape}")
    return FaceTake(R, valid.astype(bool), [str(n) for n in names], w, jaw, fps if fps > 0 else DEFAULT_FPS,
                    [c for c in cuts if 0 < c < F], str(f))


TRACK_ARRAYS = ("rotation", "valid", "rig_blendshape_names", "rig_blendshape_weights", "fps")
_TRACK_OPTIONAL = ("frame", "cuts", "jaw_rad")


def _read_track_arrays(f: Path) -> dict[str, np.ndarray]:
    """The arrays of a tracks.npz a take needs (only those: a long plate's landmarks are not read). FaceTakeError
    (one line) for a file that is not a readable .npz (truncated, corrupt) or lacks one of `TRACK_ARRAYS`."""
    import zipfile

    try:
        with np.load(f, allow_pickle=False) as d:
            data = {k: d[k] for k in TRACK_ARRAYS + _TRACK_OPTIONAL if k in d.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise FaceTakeError(f"{f}: not a readable .npz (truncated or corrupt: {e})") from None
    if missing := [k for k in TRACK_ARRAYS if k not in data]:
        raise FaceTakeError(f"{f}: not a swap's face track: missing {', '.join(missing)} (rerun `doppel swap` to "
                            "write one)")
    return data
