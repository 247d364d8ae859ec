"""A capture session assembled from a rig's photos as its cameras wrote them.

A rig's cameras (or their cards) write one folder each, their files named after the camera or the clip:
``DUMP/cam01/cam01_0001.jpg``, ``DUMP/cam02/cam02_0001.jpg``. A Doppel session is ``images/CAMERA.jpg`` (one
moment) or ``images/FRAME/CAMERA.jpg`` beside ``calibration.json``. ``assemble_session`` matches each camera's
photos by moment (``capture.rig_moments``, the rules `doppel capture calibrate` uses), names each photo after its
calibrated camera, hard-links it where the disk allows (else copies it: the photos are never re-encoded), copies
the calibration and validates the result with ``load_session`` (image sizes against the calibration).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capture.calibration_io import read_calibration
from capture.rig_moments import match_moments, photos_by_camera
from capture.session import IMAGE_EXTS, SessionError, load_session, raw_files_hint
from core.storage import write_manifest

log = logging.getLogger(__name__)


@dataclass
class AssembledSession:
    """What ``assemble_session`` put together."""

    frames: list[str]                        # the moments in the session (frame folder names), in order
    cameras: list[str]                       # the calibrated cameras, in calibration order
    matched_by: str                          # how photos of one moment were told (capture.rig_moments.RULES)
    incomplete: dict[str, list[str]] = field(default_factory=dict)   # moment left out -> cameras without a photo
    ignored: list[str] = field(default_factory=list)                 # camera folders with no calibrated camera
    linked: int = 0                          # photos hard-linked (the rest copied)
    renamed: dict[str, str] = field(default_factory=dict)            # calibrated name -> camera folder named after


def rig_photos(dump: Path) -> dict[str, dict[str, Path]]:
    """DUMP/CAMERA/*.png|jpg|jpeg -> camera folder name -> file stem -> path."""
    if not dump.is_dir():
        raise FileNotFoundError(f"{dump}: folder of camera folders not found")
    out = photos_by_camera(dump, IMAGE_EXTS)
    if not out:
        raise SessionError(f"{dump}: no camera folders with photos (expected {dump}/CAMERA/*.jpg|png|tif)"
                           f"{raw_files_hint(dump)}")
    return out


def plan_session(dump: Path, calibration: Path) -> tuple[dict[str, dict[str, Path]], AssembledSession]:
    """(moment -> calibrated camera -> photo, what will be assembled) without writing anything. Camera folders
    are matched to calibrated cameras by name (case-insensitive), or through a photo: a calibration made by a
    photogrammetry tool (Metashape, COLMAP) names each camera after the photo it aligned (``cam01_0001``), and the
    camera folder holding that photo gives the camera its name (``cam01``). A moment some calibrated camera has no
    photo of is left out (listed); SessionError when a calibrated camera has no folder or no moment is complete."""
    calibrated = [c.name for c in read_calibration(calibration)]
    photos = rig_photos(dump)
    folder_of, renamed = _camera_folders(calibrated, photos, dump)
    cameras = [renamed.get(c, c) for c in calibrated]
    folder_of = {renamed.get(c, c): f for c, f in folder_of.items()}
    ignored = sorted(set(photos) - set(folder_of.values()))
    moments, matched_by = match_moments({folder_of[c]: photos[folder_of[c]] for c in cameras})
    all_moments = sorted({m for by_m in moments.values() for m in by_m}, key=_natural)
    plan, incomplete = {}, {}
    for m in all_moments:
        without = [c for c in cameras if m not in moments[folder_of[c]]]
        if without:
            incomplete[m] = without
        else:
            plan[m] = {c: moments[folder_of[c]][m] for c in cameras}
    if not plan:
        raise SessionError(f"{dump}: no moment has a photo from every calibrated camera ({len(all_moments)} "
                           f"moment(s), matched by {matched_by}); check the folders' file names")
    return plan, AssembledSession(list(plan), cameras, matched_by, incomplete, ignored, renamed=renamed)


def _camera_folders(calibrated: list[str], photos: dict[str, dict[str, Path]],
                    dump: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(calibrated name -> camera folder, calibrated name -> new name for those found through a photo)."""
    by_lower = {name.lower(): name for name in photos}
    holding: dict[str, list[str]] = {}
    for folder, stems in photos.items():
        for stem in stems:
            holding.setdefault(stem.lower(), []).append(folder)
    folder_of, renamed, missing = {}, {}, []
    for c in calibrated:
        if c.lower() in by_lower:
            folder_of[c] = by_lower[c.lower()]
        elif len(holding.get(c.lower(), [])) == 1:
            folder_of[c] = renamed[c] = holding[c.lower()][0]
        else:
            missing.append(c)
    if missing:
        raise SessionError(f"{dump}: calibrated camera(s) {missing} have no folder, nor a photo of that name in "
                           f"exactly one camera folder (found: {sorted(photos)})")
    names = [renamed.get(c, c).lower() for c in calibrated]
    twice = sorted({c for c in calibrated if names.count(renamed.get(c, c).lower()) > 1})
    if twice:
        raise SessionError(f"{dump}: calibrated cameras {twice} all match one camera folder; each camera needs "
                           "its own folder")
    return folder_of, renamed


def assemble_session(dump: str | os.PathLike, calibration: str | os.PathLike, out: Path,
                     progress: Callable[[int, int], None] | None = None) -> AssembledSession:
    """Write the session ``out`` (an empty folder, e.g. a stage's temporary folder) from the rig's photos in
    ``dump`` and ``calibration`` (`plan_session`); one moment -> images/CAMERA.EXT, several ->
    images/FRAME/CAMERA.EXT. Validated with ``load_session`` (decoding every photo), then its manifest written
    (what a consent-gated stage reads to tell the folder is a session and what it came from)."""
    dump, calibration = Path(dump), Path(calibration)
    plan, done = plan_session(dump, calibration)
    _write_calibration(calibration, out / "calibration.json", done.renamed)
    total = sum(len(v) for v in plan.values())
    k = 0
    for m, by_cam in plan.items():
        folder = out / "images" if len(plan) == 1 else out / "images" / m
        folder.mkdir(parents=True, exist_ok=True)
        for cam, src in by_cam.items():
            done.linked += _link_or_copy(src, folder / f"{cam}{src.suffix.lower()}")
            k += 1
            if progress:
                progress(k, total)
    load_session(out)
    write_manifest(out, "capture session", inputs={"calibration": calibration},
                   params={"photos": str(dump), "matched_by": done.matched_by, "frames": done.frames,
                           "cameras": done.cameras, "left_out": done.incomplete, "ignored": done.ignored,
                           "renamed": done.renamed},
                   outputs={"calibration": "calibration.json"})
    return done


def _write_calibration(src: Path, dst: Path, renamed: dict[str, str]) -> None:
    """The session's calibration.json: a Doppel JSON copied as it is (its RMS and board kept; cameras renamed
    after their folders where ``renamed`` says), any other format that read_calibration takes (a COLMAP model
    folder, Metashape XML, OpenCV YAML/XML/JSON) written as Doppel JSON."""
    from dataclasses import replace

    from capture.calibration_io import read_doppel_json, write_doppel_json
    from core.fileio import read_json_object
    from core.storage import atomic_write_json

    if src.is_file() and src.suffix.lower() == ".json":
        try:
            read_doppel_json(src)
        except Exception:  # noqa: BLE001 - not Doppel's layout: converted below
            pass
        else:
            if not renamed:
                shutil.copyfile(src, dst)
                return
            doc = read_json_object(src)
            for cam in doc["cameras"]:
                cam["name"] = renamed.get(cam["name"], cam["name"])
            atomic_write_json(dst, doc)
            return
    write_doppel_json(dst, [replace(c, name=renamed.get(c.name, c.name)) for c in read_calibration(src)])


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst`` (True), or copy it when the disk cannot (another filesystem: False)."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def _natural(name: str) -> tuple:
    """Sort key: 2 before 10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
