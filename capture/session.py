"""A capture session on disk: ``images/CAMERA.(png|jpg)`` (one moment) or ``images/FRAME/CAMERA.*`` (several
moments; or ``images/CAMERA/FRAME.*``, a folder per camera) beside ``calibration.json`` (Doppel calibration JSON;
see capture.calibration_io).

``load_session`` validates the whole folder before anything is processed: a calibrated camera with no image (but
in a take's later frame, where it is a dropped frame: `Session.dropped`), an image of another size than
calibrated, an undecodable image, an empty folder, invalid calibration values: each is a clear error naming the
file or camera.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.calibration_io import read_calibration
from capture.camera import Camera
from core.errors import DoppelError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")   # 16-bit TIFF (a RAW development) read as 8-bit
RAW_EXTS = (".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2", ".srw", ".pef", ".iiq", ".3fr")
SINGLE_FRAME = "0"  # the frame name of a one-moment session (images/CAMERA.png)


class SessionError(DoppelError):
    """A capture session folder is incomplete or inconsistent; the message names the file or camera."""


@dataclass
class Session:
    root: Path
    cameras: list[Camera]                                  # in calibration order
    frames: dict[str, dict[str, Path]]                     # frame -> camera name -> image path (a take's later
                                                           # frame lacks the cameras that dropped it)
    warnings: list[str] = field(default_factory=list)      # non-fatal findings (extra images, dropped frames...)
    dropped: dict[str, list[str]] = field(default_factory=dict)   # frame -> cameras with no image in it

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def camera(self, name: str) -> Camera:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"session {self.root}: no camera named {name!r}")


def raw_files_hint(folder: Path) -> str:
    """What to do when ``folder`` holds camera RAW files instead of photos ('' when it holds none)."""
    if not any(p.suffix.lower() in RAW_EXTS for p in folder.rglob("*")):
        return ""
    return ("; it holds camera RAW files: develop them to 16-bit TIFF or JPEG first (same white balance and "
            "exposure for every camera)")


def _image_size(path: Path) -> tuple[int, int]:
    """(W, H) of an image as it is shown and as every stage reads it (its EXIF orientation applied: a camera
    turned to portrait writes landscape pixels and orientation 6), decoding it fully so a truncated/corrupt file
    is caught here (after the header's size is checked against capture.images.MAX_IMAGE_PIXELS)."""
    import cv2

    from capture.images import jpeg_truncated, read_image

    data = path.read_bytes()
    if not data:
        raise SessionError(f"{path}: image file is empty")
    try:
        img = read_image(path, cv2.IMREAD_COLOR, data=data)
    except ValueError as e:
        raise SessionError(str(e)) from e
    if jpeg_truncated(path, data):
        raise SessionError(f"{path}: JPEG is truncated (no end-of-image marker)")
    return img.shape[1], img.shape[0]


def _turn_hint(path: Path) -> str:
    """What to add when an image of the wrong size is stored turned (an EXIF orientation): its camera was likely
    calibrated on the photos as stored (COLMAP's way), while Doppel reads them as shown."""
    from capture.frame_files import exif_orientation

    o = exif_orientation(path)
    if o == 1:
        return ""
    return (f" (the photo is stored turned, EXIF orientation {o}, and Doppel reads it as shown: a camera calibrated "
            "on it as stored, as COLMAP does, must be turned with it: `doppel capture calibrate` (--sfm included) "
            "and a Metashape export do so; in Python, capture.camera_orientation.as_shown)")


def check_session_folder(root: str | os.PathLike) -> Path:
    """``root`` when it has the shape of a session (a folder with calibration.json and images/; nothing is read),
    else FileNotFoundError / SessionError in one line. A folder that holds a session one level down (what
    `doppel capture synth --out DIR` writes: DIR/session beside DIR/ground_truth) is named in the error."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: session folder does not exist")
    missing = _missing_parts(root)
    if not missing:
        return root
    inner = _sessions_inside(root)
    hint = (f"; the session is {inner[0]} (give that folder)" if len(inner) == 1 else
            f"; sessions inside it: {', '.join(str(d) for d in inner)}" if inner else
            " (a session is images/ + calibration.json)")
    raise SessionError(f"{root}: no {' and no '.join(missing)}{hint}")


def check_session_argument(root: str | os.PathLike) -> Path:
    """``root`` as a command's SESSION argument: SessionError (one line, naming the session) when it is not a
    session but holds one (the folder `doppel capture synth --out` wrote), so that the mistake is said before the
    consent gate reads the wrong folder; else ``root`` unchanged (its other faults are `load_session`'s)."""
    root = Path(root)
    if root.is_dir() and _missing_parts(root) and _sessions_inside(root):
        check_session_folder(root)
    return root


def _missing_parts(root: Path) -> list[str]:
    return [n for n, ok in (("calibration.json", (root / "calibration.json").is_file()),
                            ("images/ folder", (root / "images").is_dir())) if not ok]


def _sessions_inside(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not _missing_parts(d))


def load_session(root: str | os.PathLike, check_images: bool = True) -> Session:
    """Read and validate a session folder (see module doc). check_images: decode every image to check it."""
    root = check_session_folder(root)
    cameras = read_calibration(root / "calibration.json")
    img_dir = root / "images"
    entries = sorted(img_dir.iterdir())
    files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    subdirs = [p for p in entries if p.is_dir()]
    if files and subdirs:
        raise SessionError(f"{img_dir}: mixes images and frame folders; use images/CAMERA.png for one moment "
                           "or images/FRAME/CAMERA.png for several")
    names = {c.name for c in cameras}
    groups = _image_groups(img_dir, files, subdirs, names)
    if not groups:
        raise SessionError(f"{img_dir}: empty (no .png/.jpg/.tif images){raw_files_hint(img_dir)}")
    frames: dict[str, dict[str, Path]] = {}
    warnings: list[str] = []
    dropped: dict[str, list[str]] = {}
    for frame, shots in groups.items():
        by_cam: dict[str, Path] = {}
        for cam, p in shots:
            if cam in by_cam:
                raise SessionError(f"{p}: camera {cam!r} has two images in the same frame "
                                   f"({by_cam[cam].name} and {p.name})")
            by_cam[cam] = p
        missing = [c.name for c in cameras if c.name not in by_cam]
        if missing:
            dropped[frame] = missing
        extra = sorted(set(by_cam) - names)
        if extra:
            warnings.append(f"frame {frame}: images {extra} have no calibrated camera and are ignored")
        frames[frame] = {c.name: by_cam[c.name] for c in cameras if c.name in by_cam}
    warnings += _check_dropped(img_dir, cameras, list(frames), dropped)
    if check_images:
        _check_image_files(frames, cameras)
    for w in warnings:
        log.warning("%s: %s", root, w)
    return Session(root=root, cameras=cameras, frames=frames, warnings=warnings, dropped=dropped)


def _check_image_files(frames: dict[str, dict[str, Path]], cameras: list) -> None:
    """SessionError when an image is not its camera's calibrated size (the first such), or naming in one line every
    image that cannot be read whole (empty, corrupt, cut short), after all the others were read."""
    from capture.images import opencv_errors_only

    unreadable = []
    for cams in frames.values():
        for cam in cameras:
            p = cams.get(cam.name)
            if p is None:
                continue
            try:
                with opencv_errors_only():          # a file it cannot decode is named below, in one line
                    w, h = _image_size(p)
            except SessionError as e:
                unreadable.append(str(e))
                continue
            if (w, h) != (cam.width, cam.height):
                raise SessionError(f"{p}: image is {w}x{h} but camera {cam.name!r} is calibrated for "
                                   f"{cam.width}x{cam.height}{_turn_hint(p)}")
    if len(unreadable) == 1:
        raise SessionError(unreadable[0])
    if unreadable:
        total = sum(map(len, frames.values()))
        raise SessionError(f"{len(unreadable)} of {total} images cannot be read whole: {'; '.join(unreadable)}")


def _image_groups(img_dir: Path, files: list[Path], subdirs: list[Path], cameras: set[str]
                  ) -> dict[str, list[tuple[str, Path]]]:
    """frame -> [(camera, image)] of a session's images/ folder: images/CAMERA.* (one moment), images/FRAME/CAMERA.*
    (a take), or images/CAMERA/FRAME.* (a take as many capture systems export it, a folder per camera: every
    subfolder named after a calibrated camera), sorted by frame name."""
    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)

    if files:
        return {SINGLE_FRAME: [(p.stem, p) for p in files]}
    per_camera = bool(subdirs) and all(d.name in cameras for d in subdirs)
    groups: dict[str, list[tuple[str, Path]]] = {}
    for d in subdirs:
        for p in images(d):
            frame, cam = (p.stem, d.name) if per_camera else (d.name, p.stem)
            groups.setdefault(frame, []).append((cam, p))
    if per_camera:
        log.info("%s: a folder per camera (images/CAMERA/FRAME.*): %d frame(s)", img_dir, len(groups))
    return dict(sorted(groups.items()))


def _check_dropped(img_dir: Path, cameras: list[Camera], frames: list[str], dropped: dict[str, list[str]]
                   ) -> list[str]:
    """The warnings of a take's frames that some cameras dropped (a camera out of sync for a frame, a file lost in
    transfer): those views are left out of that frame. SessionError (one line) when it is not that: a one-moment
    session or a take's first frame without a camera's image (the first frame sets the actor: its fit, detail,
    texture and the neural double's full views need every camera), or a camera with no image in any frame (a name
    that matches no file: the calibration's names are the images' file names)."""
    if not dropped:
        return []
    never = [c.name for c in cameras if all(c.name in dropped.get(f, ()) for f in frames)]
    if never:
        where = img_dir if frames == [SINGLE_FRAME] else img_dir / "*"
        raise SessionError(f"{where}: calibrated camera(s) {never} have no image"
                           + ("" if frames == [SINGLE_FRAME] else " in any frame")
                           + " (an image is named after its camera in calibration.json: CAMERA.png)")
    if len(cameras) > 1 and all(len(dropped.get(f, ())) >= len(cameras) - 1 for f in frames):
        raise SessionError(f"{img_dir}: no frame holds the images of two cameras (frames {', '.join(frames[:3])}"
                           f"{', ...' if len(frames) > 3 else ''}): a take is images/FRAME/CAMERA.* or, a folder per "
                           "camera, images/CAMERA/FRAME.* with the same frame names in every camera's folder")
    first = frames[0]
    if first in dropped:
        raise SessionError(f"{img_dir}: calibrated camera(s) {dropped[first]} have no image in the take's first "
                           f"frame {first!r} (it sets the actor: every camera must see it; later frames may miss one)")
    return [f"frame {f}: camera(s) {cams} have no image (a dropped frame): left out of that frame"
            for f, cams in dropped.items()]


def write_session(root: str | os.PathLike, cameras: list[Camera], images: dict[str, np.ndarray],
                  frame: str | None = None, **calib_extra) -> Path:
    """Write a session: images (camera name -> (H, W, 3) uint8 RGB or float sRGB in [0, 1]) as PNG and
    calibration.json. With ``frame``, images go to images/FRAME/CAMERA.png. Returns root."""
    import cv2

    from capture.calibration_io import write_doppel_json
    from core.storage import atomic_write_bytes

    root = Path(root)
    d = root / "images" / frame if frame else root / "images"
    d.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        a = np.asarray(img)
        if a.dtype != np.uint8:
            a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a)
        if not ok:
            raise ValueError(f"camera {name!r}: image could not be encoded as PNG")
        atomic_write_bytes(d / f"{name}.png", buf.tobytes())
    write_doppel_json(root / "calibration.json", cameras, **calib_extra)
    return root
