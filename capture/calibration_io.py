"""Calibration files: Doppel's JSON (pydantic-validated), COLMAP sparse models (through pycolmap), Agisoft
Metashape's cameras XML (`capture.metashape_xml`) and OpenCV-style YAML/JSON. Every reader returns ``list[Camera]``
in OpenCV convention (world -> camera).

Doppel's calibration JSON::

    {"units": "m",
     "cameras": [{"name": "cam00", "width": 1024, "height": 1024,
                  "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                  "dist": [k1, k2, p1, p2, k3],
                  "R": [[...], [...], [...]],      # world -> camera, orthonormal, det +1
                  "t": [tx, ty, tz],               # metres
                  "rms": 0.21}]}                   # px, optional: reprojection RMS of the calibration
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from capture.camera import Camera
from capture.npcam import PinholeNP, as_np
from core.conventions import ROTATION_TOL, invalid_rotations, rotation_errors
from core.errors import DoppelError
from core.fileio import read_json_object
from core.storage import atomic_write_json, atomic_write_text


class CalibrationError(DoppelError):
    """A calibration file is missing, unreadable or invalid; the message names the file and field."""


def _finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values (NaN or inf): {arr.tolist()}")


class CameraModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    K: list[list[float]]
    dist: list[float] = Field(default_factory=lambda: [0.0] * 5)
    R: list[list[float]]
    t: list[float]
    rms: float | None = None

    @field_validator("K")
    @classmethod
    def _check_K(cls, v):
        K = np.asarray(v, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"must be 3x3, got shape {K.shape}")
        _finite("K", K)
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        if not np.allclose(K[2], [0, 0, 1]):
            raise ValueError(f"last row must be [0, 0, 1], got {K[2].tolist()}")
        return v

    @field_validator("dist")
    @classmethod
    def _check_dist(cls, v):
        if len(v) not in (4, 5, 8, 12, 14):
            raise ValueError(f"must hold OpenCV coefficients (k1, k2, p1, p2[, k3...]), got {len(v)} values")
        _finite("dist", np.asarray(v))
        return v

    @field_validator("R")
    @classmethod
    def _check_R(cls, v):
        R = np.asarray(v, dtype=np.float64)
        if R.shape != (3, 3):
            raise ValueError(f"must be 3x3, got shape {R.shape}")
        _finite("R", R)
        if invalid_rotations(R):
            err = float(rotation_errors(R)[0])
            raise ValueError(f"must be a rotation (orthonormal, det +1, within {ROTATION_TOL:g}); "
                             f"|R^T R - I| = {err:.2e}, det = {np.linalg.det(R):.4f}")
        return v

    @field_validator("t")
    @classmethod
    def _check_t(cls, v):
        if len(v) != 3:
            raise ValueError(f"must have 3 values, got {len(v)}")
        _finite("t", np.asarray(v))
        return v

    @field_validator("rms")
    @classmethod
    def _check_rms(cls, v):
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"must be a finite non-negative number of pixels, got {v}")
        return v


class CalibrationModel(BaseModel):
    model_config = ConfigDict(extra="allow")
    units: str = "m"
    cameras: list[CameraModel] = Field(min_length=1)

    @field_validator("units")
    @classmethod
    def _check_units(cls, v):
        if v != "m":
            raise ValueError(f"must be 'm' (metres), got {v!r}")
        return v

    @model_validator(mode="after")
    def _unique_names(self):
        names = [c.name for c in self.cameras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"camera names must be unique; repeated: {dup}")
        return self


def _format_validation_error(path: Path, err: ValidationError, doc: dict) -> str:
    msgs = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(x) for x in loc)
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            try:
                cam_name = doc["cameras"][loc[1]].get("name", "?")
                where = f"camera {cam_name!r} (cameras[{loc[1]}])" + ("." + ".".join(map(str, loc[2:])) if loc[2:]
                                                                         else "")
            except (KeyError, IndexError, AttributeError, TypeError):
                pass
        msgs.append(f"{where}: {e['msg']}")
    return f"{path}: invalid calibration: " + "; ".join(msgs)


def cameras_from_dict(doc: dict, source: str | os.PathLike = "<calibration>") -> list[Camera]:
    """Validate a Doppel calibration dict and return its cameras; CalibrationError names source and field."""
    try:
        model = CalibrationModel.model_validate(doc)
    except ValidationError as e:
        raise CalibrationError(_format_validation_error(Path(source), e, doc if isinstance(doc, dict) else {})) from e
    return [PinholeNP(name=c.name, K=c.K, R=c.R, t=c.t, width=c.width, height=c.height, dist=c.dist).to_camera()
            for c in model.cameras]


def cameras_to_dict(cameras: list[Camera], rms: dict[str, float] | None = None, **extra) -> dict:
    """Cameras (capture.Camera or PinholeNP) -> Doppel calibration dict (JSON-ready). rms: camera name -> px."""
    out = []
    for c in map(as_np, cameras):
        d = {"name": c.name, "width": int(c.width), "height": int(c.height), "K": c.K.tolist(),
             "dist": [float(x) for x in c.dist[:5]], "R": c.R.tolist(), "t": c.t.tolist()}
        r = (rms or {}).get(c.name)
        if r is not None:
            d["rms"] = float(r)
        out.append(d)
    return {"units": "m", "cameras": out, **extra}


def read_doppel_json(path: str | os.PathLike) -> list[Camera]:
    """Read and validate Doppel's calibration JSON -> cameras (in file order)."""
    path = Path(path)
    return cameras_from_dict(_read_json_calibration(path), path)


def _read_json_calibration(path: Path) -> dict:
    """The JSON object of a calibration file; CalibrationError naming the file when it is not one (binary,
    invalid JSON, a list...); FileNotFoundError when it does not exist."""
    try:
        return read_json_object(path, "calibration file")
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise CalibrationError(str(e)) from e


def write_doppel_json(path: str | os.PathLike, cameras: list[Camera], **extra) -> Path:
    """Write cameras as Doppel calibration JSON (atomic). ``extra`` keys go at the top level."""
    doc = cameras_to_dict(cameras, **extra)
    cameras_from_dict(json.loads(json.dumps(doc)), path)  # never write what we could not read back
    return atomic_write_json(path, doc)


def check_calibration_out(out: str | os.PathLike, force: bool = False) -> Path:
    """Check that a calibration may be written to ``out``: a .json name (Doppel's calibration is JSON), not a
    folder, and when it exists a Doppel calibration (recalibrating over one is the usual case) unless ``force``:
    `doppel capture calibrate` replaced any file of the name (another tool's calibration.json in the working
    folder, the default --out) without a word. ValueError / IsADirectoryError, one line. Returns the Path."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out {out}: Doppel writes its calibration as JSON: give a .json name (`doppel capture "
                         "cameras` reads it and writes Alembic or USD cameras)")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out}: is a folder, expected a .json file name")
    if out.exists() and not force:
        try:
            read_doppel_json(out)
        except (CalibrationError, OSError, ValueError) as e:
            raise ValueError(f"--out {out}: exists and is not a Doppel calibration ({e}); give another name, or "
                             "--force to replace it") from None
    return out


# --------------------------------------------------------------------------------------- COLMAP
_DOPPEL_POINTS = "# 3D point list (empty)\n"      # the points3D.txt `write_colmap_text` writes: its mark
_COLMAP_FILES = ("cameras", "images", "points3D")


def check_colmap_out(folder: str | os.PathLike, force: bool = False) -> Path:
    """Check that a COLMAP text model may be written into ``folder``: refused (ValueError, one line) when it holds
    a COLMAP model that `write_colmap_text` did not write (its points3D, text or binary), unless ``force``: the
    model's cameras, images and 3D points were replaced without a word. Returns the Path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--colmap {folder}: is a file, expected a folder")
    found = [f"{n}{x}" for n in _COLMAP_FILES for x in (".txt", ".bin") if (folder / f"{n}{x}").is_file()]
    ours = (folder / "points3D.txt").is_file() and not (folder / "points3D.bin").exists() and \
        _head(folder / "points3D.txt", len(_DOPPEL_POINTS) + 1) == _DOPPEL_POINTS.encode()
    if found and not ours and not force:
        raise ValueError(f"--colmap {folder}: holds a COLMAP model Doppel did not write ({', '.join(found)}); give "
                         "another folder, or --force to replace it")
    return folder


def _head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of ``path`` (a model's points3D.txt may be hundreds of MB; the mark is one line)."""
    with open(path, "rb") as f:
        return f.read(n)


def write_colmap_text(folder: str | os.PathLike, cameras: list[Camera]) -> Path:
    """Write a COLMAP sparse model (cameras.txt, images.txt, points3D.txt) with one OPENCV camera per
    Doppel camera. COLMAP's pixel convention (centre of the top-left pixel at 0.5, 0.5) matches ours."""
    import roma
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cam_lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for i, c in enumerate(map(as_np, cameras), start=1):
        k1, k2, p1, p2 = c.dist[:4]
        if abs(c.dist[4]) > 0:
            model = "FULL_OPENCV"
            params = [c.K[0, 0], c.K[1, 1], c.K[0, 2], c.K[1, 2], k1, k2, p1, p2, c.dist[4], 0, 0, 0]
        else:
            model = "OPENCV"
            params = [c.K[0, 0], c.K[1, 1], c.K[0, 2], c.K[1, 2], k1, k2, p1, p2]
        cam_lines.append(f"{i} {model} {c.width} {c.height} " + " ".join(repr(float(p)) for p in params))
        q_xyzw = roma.rotmat_to_unitquat(torch.from_numpy(c.R)).numpy()  # roma: (x, y, z, w)
        q = [q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]]  # COLMAP: (w, x, y, z)
        img_lines.append(f"{i} " + " ".join(repr(float(v)) for v in [*q, *c.t]) + f" {i} {c.name}")
        img_lines.append("")
    atomic_write_text(folder / "cameras.txt", "\n".join(cam_lines) + "\n")
    atomic_write_text(folder / "images.txt", "\n".join(img_lines) + "\n")
    atomic_write_text(folder / "points3D.txt", _DOPPEL_POINTS)
    return folder


def _strip_ext(name: str) -> str:
    base = Path(name).name
    return base.rsplit(".", 1)[0] if "." in base else base


def cameras_from_reconstruction(rec, names: str = "stem") -> list[Camera]:
    """A pycolmap.Reconstruction -> cameras (sorted by image name). names: "stem" (file name without
    extension, the Doppel camera name) or "full" (COLMAP image name as is)."""
    import pycolmap

    cams = []
    for image in sorted(rec.images.values(), key=lambda im: im.name):
        if hasattr(image, "has_pose") and not image.has_pose:
            continue
        cam = rec.cameras[image.camera_id]
        K = np.asarray(cam.calibration_matrix(), dtype=np.float64)
        p = list(cam.params)
        model = cam.model.name if hasattr(cam.model, "name") else str(cam.model)
        dist = np.zeros(5)
        if model in ("OPENCV", "FULL_OPENCV"):
            dist[:4] = p[4:8]
            if model == "FULL_OPENCV":
                dist[4] = p[8]
        elif model in ("SIMPLE_RADIAL",):
            dist[0] = p[3]
        elif model in ("RADIAL",):
            dist[:2] = p[3:5]
        elif model not in ("SIMPLE_PINHOLE", "PINHOLE"):
            raise CalibrationError(f"COLMAP camera {image.camera_id}: model {model} is not supported "
                                   "(use PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV or FULL_OPENCV)")
        pose = image.cam_from_world() if callable(getattr(image, "cam_from_world", None)) else image.cam_from_world
        M = np.asarray(pose.matrix(), dtype=np.float64)
        name = _strip_ext(image.name) if names == "stem" else image.name
        cams.append(PinholeNP(name=name, K=K, R=M[:, :3], t=M[:, 3], width=cam.width, height=cam.height,
                              dist=dist).to_camera())
    del pycolmap
    return cams


def read_colmap(folder: str | os.PathLike) -> list[Camera]:
    """Read a COLMAP sparse model folder (text or binary) through pycolmap -> cameras named by image
    file stem (``images/cam03.png`` -> ``cam03``)."""
    import pycolmap

    folder = Path(folder)
    has_txt = (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file()
    has_bin = (folder / "cameras.bin").is_file() and (folder / "images.bin").is_file()
    if not (has_txt or has_bin):
        raise FileNotFoundError(f"{folder}: not a COLMAP sparse model (needs cameras.txt/images.txt or "
                                "cameras.bin/images.bin)")
    try:
        rec = pycolmap.Reconstruction(str(folder))
    except (RuntimeError, ValueError, OSError) as e:  # pycolmap raises plain RuntimeError/ValueError
        raise CalibrationError(f"{folder}: COLMAP model could not be read: {e}") from e
    cams = cameras_from_reconstruction(rec)
    if not cams:
        raise CalibrationError(f"{folder}: COLMAP model has no registered images")
    return cams


# --------------------------------------------------------------------------------------- OpenCV
def _fs_mat(node) -> np.ndarray | None:
    if node is None or node.empty():
        return None
    if node.isSeq():
        return np.asarray([node.at(i).real() for i in range(node.size())], dtype=np.float64)
    if node.isInt() or node.isReal():
        return np.asarray(node.real(), dtype=np.float64)
    m = node.mat()
    return None if m is None else np.asarray(m, dtype=np.float64)


def _opencv_entry(name: str, get, path: Path) -> Camera:
    where = f"{path}: camera {name!r}"
    K = get("K") if get("K") is not None else get("camera_matrix")
    if K is None:
        raise CalibrationError(f"{where}: missing K (or camera_matrix)")
    dist = get("dist") if get("dist") is not None else get("distortion_coefficients")
    dist = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
    R = get("R")
    if R is None:
        rvec = get("rvec")
        if rvec is None:
            raise CalibrationError(f"{where}: needs R (3x3) or rvec (3)")
        import cv2

        R = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))[0]
    t = get("t") if get("t") is not None else get("tvec")
    if t is None:
        raise CalibrationError(f"{where}: missing t (or tvec)")
    w, h = get("width") if get("width") is not None else get("image_width"), \
        get("height") if get("height") is not None else get("image_height")
    if w is None or h is None:
        raise CalibrationError(f"{where}: missing width/height (or image_width/image_height)")
    doc = {"units": "m", "cameras": [{
        "name": name, "width": int(np.asarray(w).reshape(-1)[0]), "height": int(np.asarray(h).reshape(-1)[0]),
        "K": np.asarray(K, dtype=np.float64).reshape(3, 3).tolist() if np.asarray(K).size == 9 else
        np.asarray(K).tolist(),
        "dist": np.asarray(dist).reshape(-1).tolist(),
        "R": np.asarray(R, dtype=np.float64).reshape(3, 3).tolist() if np.asarray(R).size == 9 else
        np.asarray(R).tolist(),
        "t": np.asarray(t, dtype=np.float64).reshape(-1).tolist()}]}
    return cameras_from_dict(doc, path)[0]


def read_opencv(path: str | os.PathLike) -> list[Camera]:
    """OpenCV-style calibration: a YAML/XML file for cv2.FileStorage, or plain JSON, with a top-level
    ``cameras`` list of names (FileStorage) / objects (JSON), each holding K (or camera_matrix),
    dist (or distortion_coefficients), R or rvec, t (or tvec), width, height. A file without
    ``cameras`` is one camera, named after the file stem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: calibration file does not exist")
    if path.suffix.lower() == ".json":
        doc = _read_json_calibration(path)
        entries = doc.get("cameras")
        if entries is None:
            entries = [{"name": path.stem, **doc}]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise CalibrationError(f"{path}: 'cameras' must be a list of objects (one per camera)")
        cams = []
        for i, e in enumerate(entries):
            name = str(e.get("name", f"cam{i:02d}"))
            cams.append(_opencv_entry(name, lambda k, e=e: None if e.get(k) is None else np.asarray(e[k]), path))
        return cams
    import cv2

    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    if not fs.isOpened():
        raise CalibrationError(f"{path}: cv2.FileStorage could not open it (YAML or XML expected)")
    try:
        names_node = fs.getNode("cameras")
        if names_node.empty():
            return [_opencv_entry(path.stem, lambda k: _fs_mat(fs.getNode(k)), path)]
        names = [names_node.at(i).string() for i in range(names_node.size())]
        cams = []
        for n in names:
            node = fs.getNode(n)
            if node.empty():
                raise CalibrationError(f"{path}: camera {n!r} listed in 'cameras' has no node")
            cams.append(_opencv_entry(n, lambda k, node=node: _fs_mat(node.getNode(k)), path))
        return cams
    finally:
        fs.release()


def write_opencv_yaml(path: str | os.PathLike, cameras: list[Camera]) -> Path:
    """Write cameras as OpenCV FileStorage YAML (the layout ``read_opencv`` reads)."""
    import cv2

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.yaml")
    fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
    cameras = [as_np(c) for c in cameras]
    fs.startWriteStruct("cameras", cv2.FileNode_SEQ)
    for c in cameras:
        fs.write("", c.name)
    fs.endWriteStruct()
    for c in cameras:
        fs.startWriteStruct(c.name, cv2.FileNode_MAP)
        fs.write("width", int(c.width))
        fs.write("height", int(c.height))
        fs.write("K", c.K)
        fs.write("dist", c.dist.reshape(1, -1))
        fs.write("R", c.R)
        fs.write("t", c.t.reshape(3, 1))
        fs.endWriteStruct()
    fs.release()
    os.replace(tmp, path)
    return path


def read_calibration(path: str | os.PathLike) -> list[Camera]:
    """Any supported calibration: a folder (COLMAP sparse model), Doppel JSON (has "cameras" objects
    with "K"/"R"/"t" and "units" or the Doppel layout), Agisoft Metashape's cameras XML
    (``capture.metashape_xml``), OpenCV YAML/XML/JSON."""
    from capture.metashape_xml import MetashapeError, is_metashape_xml, read_metashape_xml

    path = Path(path)
    if path.is_dir():
        return read_colmap(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: calibration file does not exist")
    if is_metashape_xml(path):
        try:
            return read_metashape_xml(path).cameras
        except MetashapeError as e:
            raise CalibrationError(str(e)) from e
    if path.suffix.lower() == ".json":
        doc = _read_json_calibration(path)
        if isinstance(doc.get("cameras"), list) and \
                all(isinstance(c, dict) and "K" in c and "R" in c for c in doc["cameras"]):
            return cameras_from_dict(doc, path)
        return read_opencv(path)
    return read_opencv(path)


def calibration_rms(path: str | os.PathLike) -> dict[str, float]:
    """camera name -> RMS reprojection error (px) recorded in a Doppel calibration JSON (cameras without one
    are left out)."""
    doc = _read_json_calibration(Path(path))
    return {c["name"]: float(c["rms"]) for c in doc.get("cameras", []) if c.get("rms") is not None}
