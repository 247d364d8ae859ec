"""Agisoft Metashape's camera export (File > Export > Export Cameras..., "Agisoft XML") read as Doppel cameras.

A studio's photogrammetry rig is often aligned in Metashape (a scale bar or coded targets give it metres); its
export is the rig's calibration. Metashape's frame camera (Metashape Professional manual, appendix "Camera
models"), for a point (X, Y, Z) in the camera frame (x right, y down, z forward, as Doppel's)::

    x = X / Z,  y = Y / Z,  r2 = x^2 + y^2
    x' = x (1 + K1 r2 + K2 r2^2 + K3 r2^3 + K4 r2^4) + (P1 (r2 + 2 x^2) + 2 P2 x y) (1 + P3 r2 + P4 r2^2)
    y' = y (1 + K1 r2 + K2 r2^2 + K3 r2^3 + K4 r2^4) + (P2 (r2 + 2 y^2) + 2 P1 x y) (1 + P3 r2 + P4 r2^2)
    u = w / 2 + cx + x' (f + B1) + y' B2
    v = h / 2 + cy + y' f

with the centre of the top-left pixel at (0.5, 0.5), as in Doppel. So K = [[f + B1, 0, w/2 + cx], [0, f, h/2 + cy],
[0, 0, 1]] and OpenCV's (k1, k2, p1, p2, k3) = (K1, K2, P2, P1, K3): Metashape's P1 is OpenCV's p2 (the swap is a
known trap of converters). K4, P3, P4 and the skew B2 have no term in the OpenCV camera Doppel's numeric paths use
(cv2's projections ignore a skew): a sensor that uses them gets the five OpenCV terms closest to its whole mapping
over the image (linear least squares), the largest difference in pixels is said, and one the five cannot follow
within ``MAX_REFIT_PX`` is refused.

PhotoScan (before Metashape 1.5) wrote fx, fy, a skew and the principal point in pixels instead of f, B1, B2 and
the offset from the image centre: read as such.

Poses: a camera's ``<transform>`` is its camera-to-chunk 4x4 (row-major); the chunk's (Metashape 1.x) or the
camera's component's (2.x) ``<transform>`` (rotation, translation, scale) takes chunk to world coordinates. A
chunk without one was never scaled: its units are arbitrary and it is refused, as is a georeferenced one (camera
centres kilometres from the origin: the world would be geocentric metres). Cameras Metashape could not align
(no transform) are left out and said; a sensor other than a frame camera (fisheye, spherical) is refused.

A camera's ``<orientation>`` (its photo's EXIF orientation: 6 for a body mounted in portrait) is read as
Metashape's sensor calibration being the sensor's as stored (one calibration serves a body's landscape and
portrait photos): the camera is turned to its photo as shown, which is how Doppel reads every image
(`capture.camera_orientation`). Not checked against a Metashape export of turned photos here; were it otherwise,
the session would refuse the camera for its image size, not misplace it.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from capture.camera import Camera
from capture.camera_orientation import as_shown
from capture.npcam import PinholeNP
from core.errors import DoppelError

log = logging.getLogger(__name__)

MAX_REFIT_PX = 0.5          # K4/P3/P4/B2 refitted to OpenCV's five terms: refused above this difference, pixels
GEOREFERENCED_M = 10_000.0  # a camera centre this far from the origin: a geocentric (georeferenced) world
_REFIT_GRID = 41            # points a side of the grid the refit samples over the image


class MetashapeError(DoppelError):
    """A Metashape camera export that cannot become Doppel cameras; the message names the file and what."""


@dataclass
class MetashapeCameras:
    """What ``read_metashape_xml`` read."""

    cameras: list[Camera]                                       # aligned cameras, in the file's order
    unaligned: list[str] = field(default_factory=list)          # camera labels without a transform (left out)
    refit_px: dict[str, float] = field(default_factory=dict)    # sensor label -> largest refit difference, px
    version: str = ""                                           # the document's version attribute


@dataclass
class _Sensor:
    label: str
    width: int
    height: int
    K: np.ndarray           # (3, 3) pixels
    dist: np.ndarray        # (5,) OpenCV k1, k2, p1, p2, k3


def is_metashape_xml(path: str | os.PathLike) -> bool:
    """True when ``path`` is an XML file whose root element is Metashape's ``<document>`` (cheap: reads the
    first element only)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".xml":
        return False
    try:
        for _event, elem in ET.iterparse(path, events=("start",)):
            return elem.tag == "document"
    except ET.ParseError:
        return False
    return False


def read_metashape_xml(path: str | os.PathLike) -> MetashapeCameras:
    """Metashape cameras XML -> Doppel cameras (world-to-camera, metres), named by each camera's label without
    folder and extension (``cam01.jpg`` and ``D:/rig/cam01.JPG`` -> ``cam01``). MetashapeError for a file that is
    not such an export, several chunks, an unscaled or georeferenced chunk, an unsupported sensor, a distortion
    the OpenCV terms cannot follow, or two cameras with one name."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise MetashapeError(f"{path}: not readable as XML: {e}") from e
    if root.tag != "document":
        raise MetashapeError(f"{path}: not a Metashape camera export (root element <{root.tag}>, "
                             "expected <document>)")
    chunk = _the_chunk(root, path)
    sensors = {s.get("id"): s for s in chunk.iterfind("./sensors/sensor")}
    read: dict[str, _Sensor] = {}
    out = MetashapeCameras(cameras=[], version=root.get("version", ""))
    for cam in chunk.find("cameras").iter("camera") if chunk.find("cameras") is not None else ():
        label = cam.get("label", cam.get("id", "?"))
        tf = cam.find("transform")
        if tf is None or not (tf.text or "").split():
            out.unaligned.append(label)
            continue
        sid = cam.get("sensor_id")
        if sid not in read:
            read[sid] = _sensor(sensors.get(sid), sid, path, out.refit_px)
        out.cameras.append(_camera(cam, label, _floats(tf, 16, f"camera {label!r} transform", path),
                                   read[sid], _world_of(chunk, cam, path), path))
    _check(out, path)
    return out


def _the_chunk(root: ET.Element, path: Path) -> ET.Element:
    chunks = root.findall("chunk")
    if len(chunks) != 1:
        labels = [c.get("label", c.get("id", "?")) for c in chunks]
        raise MetashapeError(f"{path}: {len(chunks)} chunks {labels}; export the rig's chunk alone "
                             "(File > Export > Export Cameras... exports the active chunk)")
    return chunks[0]


def _floats(elem: ET.Element | None, n: int, what: str, path: Path) -> np.ndarray:
    try:
        vals = np.array([float(v) for v in (elem.text or "").split()], dtype=np.float64)
    except (AttributeError, ValueError) as e:
        raise MetashapeError(f"{path}: {what} is not a list of numbers") from e
    if vals.size != n or not np.all(np.isfinite(vals)):
        raise MetashapeError(f"{path}: {what} must hold {n} finite numbers, got {vals.size}")
    return vals


def _number(calib: ET.Element, tag: str, path: Path, label: str) -> float:
    node = calib.find(tag)
    if node is None or not (node.text or "").strip():
        return 0.0
    try:
        return float(node.text)
    except ValueError as e:
        raise MetashapeError(f"{path}: sensor {label!r}: <{tag}> is not a number: {node.text!r}") from e


def _sensor(elem: ET.Element | None, sid: str | None, path: Path, refit_px: dict[str, float]) -> _Sensor:
    if elem is None:
        raise MetashapeError(f"{path}: a camera names sensor {sid!r}, which the file does not define")
    label = elem.get("label", f"sensor {sid}")
    kind = elem.get("type", "frame")
    if kind != "frame":
        raise MetashapeError(f"{path}: sensor {label!r} is a {kind} camera; Doppel reads frame (pinhole) "
                             "cameras only")
    calibs = elem.findall("calibration")
    calib = next((c for c in calibs if c.get("class") == "adjusted"), calibs[0] if calibs else None)
    if calib is None or calib.find("resolution") is None:
        raise MetashapeError(f"{path}: sensor {label!r} has no calibration (align the photos, then export)")
    res = calib.find("resolution")
    try:
        w, h = int(res.get("width", 0)), int(res.get("height", 0))
    except ValueError as e:
        raise MetashapeError(f"{path}: sensor {label!r}: its resolution is not whole numbers") from e
    num = {t: _number(calib, t, path, label) for t in
           ("f", "fx", "fy", "cx", "cy", "b1", "b2", "skew", "k1", "k2", "k3", "k4", "p1", "p2", "p3", "p4")}
    if num["f"]:                          # Metashape 1.5 on: f, B1, B2, principal point from the image centre
        fx, fy, cx, cy = num["f"] + num["b1"], num["f"], w / 2 + num["cx"], h / 2 + num["cy"]
    else:                                 # PhotoScan: fx, fy, skew, principal point in pixels
        fx, fy, cx, cy = num["fx"], num["fy"], num["cx"], num["cy"]
        num["b2"] = num["skew"]
    if w <= 0 or h <= 0 or fx <= 0 or fy <= 0:
        raise MetashapeError(f"{path}: sensor {label!r}: resolution {w}x{h} and focal length {fy} must be "
                             "positive")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    dist = np.array([num["k1"], num["k2"], num["p2"], num["p1"], num["k3"]])
    extra = {t: num[t] for t in ("k4", "p3", "p4", "b2") if num[t] != 0.0}
    if extra:
        dist, worst = refit_distortion(num, K, w, h)
        refit_px[label] = worst
        if worst > MAX_REFIT_PX:
            raise MetashapeError(f"{path}: sensor {label!r}: its distortion {extra} has no OpenCV term; the five "
                                 f"OpenCV terms follow it within {worst:.2f} px at worst (limit {MAX_REFIT_PX}); "
                                 "calibrate without k4/p3/p4 in Metashape (Tools > Camera Calibration)")
        log.warning("%s: sensor %r: %s refitted to OpenCV's k1, k2, p1, p2, k3 (largest difference %.3f px)",
                    path.name, label, extra, worst)
    return _Sensor(label, w, h, K, dist)


def metashape_distort(xy: np.ndarray, c: dict[str, float]) -> np.ndarray:
    """Metashape's distortion of normalised camera coordinates. xy (N, 2) -> (N, 2); ``c`` holds k1..k4 and
    p1..p4 by those names (missing ones 0)."""
    g = {t: c.get(t, 0.0) for t in ("k1", "k2", "k3", "k4", "p1", "p2", "p3", "p4")}
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (g["k1"] + r2 * (g["k2"] + r2 * (g["k3"] + r2 * g["k4"])))
    tang = 1 + r2 * (g["p3"] + r2 * g["p4"])
    xd = x * radial + (g["p1"] * (r2 + 2 * x * x) + 2 * g["p2"] * x * y) * tang
    yd = y * radial + (g["p2"] * (r2 + 2 * y * y) + 2 * g["p1"] * x * y) * tang
    return np.stack([xd, yd], -1)


def refit_distortion(c: dict[str, float], K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """OpenCV's (k1, k2, p1, p2, k3) closest to Metashape's whole mapping ``c`` (its distortion and skew b2) over
    the image (a grid of normalised coordinates spanning it), for the skew-free ``K`` (3, 3), and the largest
    difference that leaves, in pixels. The OpenCV displacement is linear in its five terms: one least-squares
    solve."""
    us = np.linspace(0.5, width - 0.5, _REFIT_GRID)
    vs = np.linspace(0.5, height - 0.5, _REFIT_GRID)
    u, v = (a.reshape(-1) for a in np.meshgrid(us, vs))
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2]) / K[0, 0]
    xy = np.stack([x, y], -1)
    d = metashape_distort(xy, c)
    target_u = (d[:, 0] - x) * K[0, 0] + c.get("b2", 0.0) * d[:, 1]                 # pixels Metashape moves u
    target_v = (d[:, 1] - y) * K[1, 1]
    r2 = x * x + y * y
    cols_x = [x * r2, x * r2 ** 2, 2 * x * y, r2 + 2 * x * x, x * r2 ** 3]           # k1, k2, p1, p2, k3
    cols_y = [y * r2, y * r2 ** 2, r2 + 2 * y * y, 2 * x * y, y * r2 ** 3]
    A = np.concatenate([np.stack(cols_x, -1) * K[0, 0], np.stack(cols_y, -1) * K[1, 1]])   # pixels
    b = np.concatenate([target_u, target_v])
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    resid = (A @ coef - b).reshape(2, -1)
    return coef, float(np.sqrt((resid ** 2).sum(0)).max())


def _world_of(chunk: ET.Element, cam: ET.Element, path: Path) -> np.ndarray:
    """(4, 4) chunk -> world similarity of ``cam``: its component's transform (Metashape 2.x), else the chunk's
    (1.x). MetashapeError when there is none (an unscaled chunk)."""
    tf = None
    cid = cam.get("component_id")
    for comp in chunk.iterfind("./components/component"):
        if cid is None or comp.get("id") == cid:
            tf = comp.find("transform")
            break
    if tf is None:
        tf = chunk.find("transform")
    if tf is None or tf.find("rotation") is None:
        raise MetashapeError(f"{path}: the chunk has no coordinate system (never scaled: its units are arbitrary); "
                             "add a scale bar or markers with coordinates in Metashape, update, and export again")
    R = _floats(tf.find("rotation"), 9, "chunk rotation", path).reshape(3, 3)
    T = _floats(tf.find("translation"), 3, "chunk translation", path) if tf.find("translation") is not None \
        else np.zeros(3)
    s = float(_floats(tf.find("scale"), 1, "chunk scale", path)[0]) if tf.find("scale") is not None else 1.0
    M = np.eye(4)
    M[:3, :3] = s * R
    M[:3, 3] = T
    return M


def _camera(cam: ET.Element, label: str, tf16: np.ndarray, sensor: _Sensor, world: np.ndarray,
            path: Path) -> Camera:
    """One Doppel camera from Metashape's camera-to-chunk ``tf16`` (16,) and the chunk-to-world ``world``."""
    M = world @ tf16.reshape(4, 4)                     # camera -> world, with the chunk's scale
    A = M[:3, :3]
    scale = np.cbrt(np.linalg.det(A))
    if not np.isfinite(scale) or scale <= 0:
        raise MetashapeError(f"{path}: camera {label!r}: its transform is not a rotation with a positive scale")
    R_cw = A / scale                                   # camera -> world rotation
    if np.abs(R_cw.T @ R_cw - np.eye(3)).max() > 1e-5:
        raise MetashapeError(f"{path}: camera {label!r}: its transform's rotation is not orthonormal")
    centre = M[:3, 3]
    R = R_cw.T
    stored = PinholeNP(name=_name(label), K=sensor.K, R=R, t=-R @ centre, width=sensor.width, height=sensor.height,
                       dist=sensor.dist)
    node = cam.find("orientation")
    try:
        orientation = int((node.text or "1").strip()) if node is not None else 1
        return as_shown(stored, orientation).to_camera()
    except ValueError as e:
        raise MetashapeError(f"{path}: camera {label!r}: {e}") from e


def _name(label: str) -> str:
    """A camera's label as Doppel names it: without folders (either slash) and without an image extension."""
    base = PureWindowsPath(label).name
    stem, dot, ext = base.rpartition(".")
    return stem if dot and stem and ext.lower() in {"jpg", "jpeg", "png", "tif", "tiff", "exr", "dng", "cr2",
                                                    "cr3", "nef", "arw", "raf", "dpx"} else base


def _check(out: MetashapeCameras, path: Path) -> None:
    if not out.cameras:
        raise MetashapeError(f"{path}: no aligned camera (of {len(out.unaligned)}); align the photos in Metashape "
                             "and export again")
    names = [c.name for c in out.cameras]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MetashapeError(f"{path}: several cameras named {twice}; give each photo its camera's own name")
    far = max(float(np.linalg.norm(c.center.double().numpy())) for c in out.cameras)
    if far > GEOREFERENCED_M:
        raise MetashapeError(f"{path}: camera centres up to {far / 1000:.0f} km from the origin: the chunk is "
                             "georeferenced; set a local coordinate system (metres) in Metashape and export again")
    if out.unaligned:
        log.warning("%s: %d camera(s) not aligned in Metashape, left out: %s", path.name, len(out.unaligned),
                    out.unaligned[:8] + (["..."] if len(out.unaligned) > 8 else []))
