"""Structure from motion for uncalibrated photos, through pycolmap (SIFT features, matching of every pair of photos
on a small rig or of each photo with its most alike on a large one, incremental mapping), into capture.Camera,
with metric scale from a known distance between two camera centres or from a ChArUco board in view.

COLMAP's pixel convention (the centre of the top-left pixel at (0.5, 0.5)) is Doppel's, so intrinsics
carry over unchanged; COLMAP calibrates each photo as stored, Doppel reads it as shown: a photo with an EXIF
orientation (a camera mounted in portrait) has its camera turned with it (`capture.camera_orientation`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from capture.calibration_io import cameras_from_reconstruction
from capture.camera_orientation import as_shown
from capture.charuco import BoardSpec, detect_charuco
from capture.colmap_process import ColmapJob, run_colmap
from capture.colmap_retrieval import DEFAULT_NEIGHBOURS, resolve_matching
from capture.frame_files import exif_orientation
from capture.npcam import PinholeNP, as_np
from capture.triangulation import triangulate_points
from core.cpu_quota import usable_cores
from core.errors import DoppelError

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_BOARD_CORNERS_3D = 6   # board corners triangulated in >= 2 views needed for a board scale


class SfmFailed(DoppelError):
    """Structure from motion registered too few images, or the scale could not be fixed."""


@dataclass
class SfmResult:
    cameras: list                       # capture.Camera, metric when a scale was given, named by camera_of
    registered: list[str]               # image names registered
    unregistered: list[str]             # image names COLMAP could not place
    mean_reprojection_px: float         # COLMAP's mean reprojection error
    n_points: int                       # sparse 3D points
    scale: float                        # factor applied to COLMAP's arbitrary units (1.0 when none)
    scale_source: str                   # "none", "distance", "board"
    details: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)   # features_s, matching_s, mapping_s, scale_s
    matching: dict = field(default_factory=dict)   # mode ("exhaustive" / "retrieval"), pairs matched, neighbours
    no_photo: list[str] = field(default_factory=list)  # camera folders (the rig's layout) without a photo: left out
    moment: str | None = None           # the rig's layout: the moment whose photos were used (None: a flat folder)
    stand_in: list[str] = field(default_factory=list)  # cameras without a photo of it: their first photo used
    threads: dict[str, int] = field(default_factory=dict)  # {"features_matching": N, "mapping": M} threads used


def run_sfm(image_dir: str | os.PathLike, work_dir: str | os.PathLike, *, camera_model: str = "SIMPLE_RADIAL",
            single_camera: bool = False, known_distance: tuple[str, str, float] | None = None,
            board: BoardSpec | None = None, max_image_size: int = 1600, num_threads: int | None = None,
            mapper_threads: int = 1, seed: int = 0, matching: str = "auto", neighbours: int = DEFAULT_NEIGHBOURS,
            moment: str | None = None, progress: Callable[[str, float], None] | None = None) -> SfmResult:
    """Reconstruct the cameras of the images in ``image_dir``: a flat folder of .png/.jpg (a camera per photo, named
    by its file's stem), or the rig's layout of one folder per camera (image_dir/CAMERA/*.png, as the board
    calibration and `doppel capture session` read it: the photos of one moment, `one_moment`, ``moment`` or the one
    most cameras saw; the camera named by its folder).

    work_dir: COLMAP database and sparse model go here (replaced). camera_model: COLMAP model for the
    intrinsics (SIMPLE_RADIAL, OPENCV, PINHOLE...). single_camera: all images share intrinsics.
    known_distance: (camera A, camera B, metres) between their centres; board: a ChArUco board seen in
    the images. Without either, the scale is COLMAP's arbitrary one (scale_source "none"). seed: COLMAP's random
    number generator's (its RANSAC and sampling). num_threads: the threads that read the photos, extract their
    features and match them (default: every core this process may use, `core.cpu_quota.usable_cores`); any number
    gives the same features and matches. mapper_threads: the mapper's; on one (the default) the same images give
    the same cameras run after run, on more it may be faster on a large rig but the cameras differ from run to run.
    matching: "exhaustive" (every pair of photos), "retrieval" (each photo with its ``neighbours`` most alike, found
    by a vocabulary of the photos' own features: `capture.colmap_retrieval`), "auto" (every pair up to twice
    ``neighbours`` photos, retrieval beyond).
    progress(step, fraction): called as each step starts, as COLMAP extracts each photo's features and matches
    each photo (or block of pairs), and as the mapper places each photo. COLMAP runs in a child
    process (`capture.colmap_process`): Ctrl-C (a KeyboardInterrupt) stops it at once, where a step's C++ call held
    it until the step ended (a minute into a 24-camera rig's matching). The child is spawned, so a script that calls
    this at its top level needs Python's ``if __name__ == "__main__":`` guard (multiprocessing's own error says so).
    """
    from capture.images import check_threads

    check_threads(num_threads)                       # the arguments before the photos
    check_threads(mapper_threads, "mapper_threads")
    report = progress or (lambda *_: None)
    image_dir, work_dir = Path(image_dir), Path(work_dir)
    names, no_photo, pick = _image_names(image_dir, known_distance, moment)
    if neighbours < 1:
        raise ValueError(f"neighbours {neighbours}: each photo needs at least one to be matched with")
    mode = resolve_matching(matching, len(names), neighbours)
    threads = {"features_matching": usable_cores() if num_threads is None else num_threads,
               "mapping": mapper_threads}
    report(f"checking {len(names)} photos", 0.0)      # the arguments first: decoding every photo takes seconds
    _check_photos(image_dir, names, layout=pick is not None, num_threads=threads["features_matching"])
    if work_dir.exists():
        shutil.rmtree(work_dir)
    (work_dir / "sparse").mkdir(parents=True)
    secs: dict[str, float] = {}
    job = ColmapJob(database=work_dir / "database.db", image_dir=image_dir, names=tuple(names),
                    sparse_dir=work_dir / "sparse", camera_model=camera_model, single_camera=single_camera,
                    max_image_size=max_image_size, num_threads=threads["features_matching"],
                    mapper_threads=mapper_threads, seed=seed, matching=mode, neighbours=neighbours)
    rec, matched = _reconstruct(job, report, secs)
    # COLMAP calibrates each photo as stored; Doppel reads it as shown (EXIF orientation: a body in portrait)
    file_of = {camera_of(n): image_dir / n for n in names}
    cams = [as_shown(replace(as_np(c), name=camera_of(c.name)), exif_orientation(image_dir / c.name))
            for c in cameras_from_reconstruction(rec, names="full")]
    registered = sorted(im.name for im in rec.images.values() if im.has_pose)
    unregistered = sorted(set(names) - set(registered))
    if len(cams) < 2:
        raise SfmFailed(f"{image_dir}: only {len(cams)} image(s) registered")
    if unregistered:
        log.warning("SfM: %d image(s) not registered: %s", len(unregistered), ", ".join(unregistered))
    t = time.perf_counter()
    report("metric scale", 0.97)
    scale, source, details = 1.0, "none", {}
    if known_distance is not None:
        scale, source = distance_scale(cams, *known_distance), "distance"
    elif board is not None:
        scale, details = board_scale(cams, file_of, board)
        source = "board"
    cams = [replace(c, t=c.t * scale) for c in cams]
    secs["scale_s"] = time.perf_counter() - t
    return SfmResult(cameras=[c.to_camera() for c in cams], registered=registered, unregistered=unregistered,
                     mean_reprojection_px=float(rec.compute_mean_reprojection_error()),
                     n_points=int(rec.num_points3D()), scale=scale, scale_source=source, details=details,
                     seconds=secs, matching=matched, no_photo=no_photo, moment=pick.moment if pick else None,
                     stand_in=pick.stand_in if pick else [], threads=threads)


def camera_of(image_name: str) -> str:
    """The camera a photo (its name under the photos' folder) is of: its folder in the rig's layout
    (``cam01/0001.png`` -> cam01), else its file name's stem (``cam01.png`` -> cam01)."""
    path = PurePosixPath(image_name)
    return path.parent.name or path.stem


def _image_names(image_dir: Path, known_distance, moment: str | None
                 ) -> tuple[list[str], list[str], MomentPick | None]:
    """The photos' names under ``image_dir`` (sorted): its photos, or when it holds none one photo of each camera's
    folder (``cam01/0001.png``, `one_moment`); checked: at least 2, the known distance's cameras among them. Also the
    camera folders that hold no photo, and the moment picked (None for a flat folder)."""
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder does not exist")
    names = sorted(p.name for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    no_photo: list[str] = []
    pick = None
    if names and moment is not None:
        raise SfmFailed(f"moment {moment!r}: {image_dir} holds its photos directly (a camera per photo); a moment "
                        "is picked among the rig's layout of one folder per camera (CAMERA/*.png)")
    if not names:              # the rig's layout: a folder per camera, the photos of one moment
        folders = sorted(p.name for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        pick = one_moment(image_dir, moment)
        names = [f"{cam}/{pick.photos[cam].name}" for cam in folders if cam in pick.photos]
        no_photo = [cam for cam in folders if cam not in pick.photos]
    if len(names) < 2:
        raise SfmFailed(f"{image_dir}: structure from motion needs at least 2 images (in the folder, or one per "
                        f"camera folder), found {len(names)}")
    if known_distance is not None:
        cameras = {camera_of(n) for n in names}
        for n in known_distance[:2]:
            if n not in cameras:
                raise SfmFailed(f"known distance: camera {n!r} has no image in {image_dir}")
    if no_photo:
        log.warning("SfM: %d camera folder(s) without a photo left out: %s", len(no_photo), ", ".join(no_photo))
    if pick and pick.stand_in:
        log.warning("SfM: %d camera(s) without a photo of moment %r, their first photo used: %s",
                    len(pick.stand_in), pick.moment, ", ".join(pick.stand_in))
    return names, no_photo, pick


def _check_photos(image_dir: Path, names: list[str], layout: bool, num_threads: int = 1) -> None:
    """SfmFailed naming every photo that does not decode whole (empty, corrupt, cut short): COLMAP skipped an empty
    one, kept a cut-short PNG without features ("not registered") and took features from what it could read of a
    cut-short JPEG (3450 of a whole one's 6796 from one cut at half its bytes). Each photo decoded once (96 of
    1024x768 in 1.7 s on one thread), on ``num_threads`` threads."""
    from capture.images import map_photos, photo_problem

    bad = [why for why in map_photos(photo_problem, [image_dir / n for n in names], num_threads) if why]
    if bad:
        other = "; or pick another moment (--moment)" if layout else ""
        raise SfmFailed(f"{len(bad)} of {len(names)} photos cannot be read whole: {'; '.join(bad)}. Copy them "
                        f"again from the card, or remove them{other}")


@dataclass(frozen=True)
class MomentPick:
    """The photos structure from motion reads from the rig's layout. moment: the moment's name as the photos were
    matched (`capture.rig_moments`: a file name, or a frame number); photos: camera -> its photo; stand_in: the
    cameras that have no photo of the moment, whose first photo is used (the rig stood still)."""

    moment: str | None
    photos: dict[str, Path]
    stand_in: list[str] = field(default_factory=list)


def one_moment(rig_dir: Path, moment: str | None = None) -> MomentPick:
    """One photo per camera folder of ``rig_dir`` (CAMERA/*.png): those of ``moment``, by default the moment most
    cameras saw (the earliest of equals; moments matched by file name, as the board calibration matches them:
    `capture.rig_moments`), and for a camera that missed it, its first photo. Camera folders without a photo are
    left out. A ``moment`` no camera saw raises SfmFailed naming those there are."""
    from capture.rig_moments import match_moments, photos_by_camera

    files = {cam: by for cam, by in photos_by_camera(rig_dir, PHOTO_SUFFIXES).items() if not cam.startswith(".")}
    if not files:
        return MomentPick(moment, {})
    moments, _ = match_moments(files)
    seen = Counter(m for by_moment in moments.values() for m in by_moment)
    best = min(seen, key=lambda m: (-seen[m], *_moment_order(m))) if moment is None else _named(moment, seen)
    stand_in = sorted(cam for cam, by in moments.items() if best not in by)
    return MomentPick(best, {cam: by.get(best) or by[min(by, key=_moment_order)] for cam, by in moments.items()},
                      stand_in)


def _named(wanted: str, seen: Counter) -> str:
    """The moment among ``seen`` that ``wanted`` names: the same name, or the same frame number ("0012" is 12)."""
    if wanted in seen:
        return wanted
    number = int(wanted) if wanted.strip().isdigit() else None
    same = [m for m in seen if m.isdigit() and int(m) == number]
    if len(same) == 1:
        return same[0]
    order = sorted(seen, key=_moment_order)
    listed = ", ".join(order[:4]) + (f", ... {order[-1]}" if len(order) > 4 else "")
    if same:
        raise SfmFailed(f"moment {wanted!r} names {len(same)} moments ({', '.join(sorted(same))}): give one")
    raise SfmFailed(f"moment {wanted!r}: no camera has a photo of it; the moments are {listed} ({len(order)} in all)")


def _moment_order(moment: str) -> tuple[float, str]:
    """Moments in time order: frame numbers as numbers ("9" before "10"), names as text after them."""
    return (int(moment) if moment.isdigit() else float("inf"), moment)


def _reconstruct(job: ColmapJob, report: Callable[[str, float], None], secs: dict):
    """COLMAP's features, matching and incremental mapping (in a child process: `capture.colmap_process`); (the
    reconstruction that registered most images, a pycolmap.Reconstruction; what was matched). Timings into
    ``secs``."""
    import pycolmap

    try:
        run = run_colmap(job, report)
    except RuntimeError as e:             # COLMAP's own error, or its process's end, in one line
        raise SfmFailed(f"{job.image_dir}: {e}") from e
    secs.update(run.seconds)
    if run.best is None:
        raise SfmFailed(f"{job.image_dir}: COLMAP could not initialise a reconstruction (too little texture or "
                        "overlap between the images?)")
    return pycolmap.Reconstruction(run.best), run.matching


def distance_scale(cams, a: str, b: str, metres: float) -> float:
    """Scale (metres per unit) that makes the distance between the centres of cameras a and b ``metres``."""
    by = {c.name: c for c in map(as_np, cams)}
    for n in (a, b):
        if n not in by:
            raise SfmFailed(f"known distance: camera {n!r} is not among the registered images {sorted(by)}")
    d = float(np.linalg.norm(by[a].center - by[b].center))
    if d <= 0 or metres <= 0:
        raise SfmFailed(f"known distance: degenerate distance ({d} units, {metres} m)")
    return metres / d


def board_scale(cams: list[PinholeNP], files: dict[str, Path], spec: BoardSpec) -> tuple[float, dict]:
    """Metric scale from a ChArUco board: triangulate its corners with the (unscaled) cameras and compare
    all pairwise corner distances with the board's. files: each camera's photo by camera name. Returns (metres per
    unit, details)."""
    import cv2

    obj = spec.corners3d
    uv = np.full((len(cams), len(obj), 2), np.nan)
    for v, c in enumerate(cams):
        img = cv2.imread(str(files[c.name]), cv2.IMREAD_GRAYSCALE)
        det = detect_charuco(img, spec) if img is not None else None
        if det is not None:
            uv[v, det.ids] = det.uv
    tri = triangulate_points(cams, uv, threshold_px=4.0)
    ok = np.flatnonzero(tri.ok)
    if len(ok) < MIN_BOARD_CORNERS_3D:
        raise SfmFailed(f"board scale: only {len(ok)} board corners seen in two or more registered views "
                        f"(need {MIN_BOARD_CORNERS_3D})")
    i, j = np.triu_indices(len(ok), 1)
    rec = np.linalg.norm(tri.X[ok[i]] - tri.X[ok[j]], axis=1)
    true = np.linalg.norm(obj[ok[i]] - obj[ok[j]], axis=1)
    ratios = true / rec
    s = float(np.median(ratios))
    return s, {"board_corners": int(len(ok)), "ratio_spread": float(np.std(ratios) / s)}
