"""Inputs of the neural double commands (`doppel texture`, `doppel render train` / `shot`): a capture session,
its fit (the mesh and its UV layout), person masks, and the checks that they belong together.

Everything is turned into plain arrays / tensors here so that ``neural_render`` never sees a rig or a fit folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reconstruction.fit_folder import UV_LAYOUT_FILE  # a fit's uvs (T, 2) v up, face_uvs (F, 3) (else the model's)

log = logging.getLogger(__name__)

MIN_FIT_IOU = 0.5                  # mean silhouette IoU between the fit and the person masks below this: refused
MIN_FIT_INSIDE = 0.7               # a head model's fit: mean share of its silhouette inside the masks, refused below
HEAD_MODELS = ("flame",)           # body models of the head alone (the person's silhouette is more than them)
BACKDROP_THRESHOLD = 0.06          # sRGB distance from the backdrop colour that counts as the person


@dataclass
class FitMesh:
    """The fitted mesh of every frame of a fit folder, with its UV layout."""

    fit_dir: Path
    model: str
    frames: dict[str, np.ndarray]    # session frame name -> (V, 3) float32 posed vertices, world metres
    faces: np.ndarray                # (F, 3) int64
    uvs: np.ndarray                  # (T, 2) float32, v up
    face_uvs: np.ndarray             # (F, 3) int64


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {path.parent} a `doppel fit` output folder?")
    m = trimesh.load(path, process=False, force="mesh")
    return np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)


def _uv_layout(fit_dir: Path, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(uvs, face_uvs, the model's faces or None): from FIT/uv_layout.npz, else from the body model."""
    f = fit_dir / UV_LAYOUT_FILE
    if f.is_file():
        with np.load(f) as d:
            return np.asarray(d["uvs"], np.float32), np.asarray(d["face_uvs"], np.int64), None
    if model != "anny":
        body = _fitted_model(fit_dir, model)
        if body is None or body.uvs is None:
            from reconstruction.body_models.uv_layouts import UV_FILES

            raise ValueError(f"{fit_dir}: a {model} fit has no UV layout here: put {' or '.join(UV_FILES[model])} "
                             f"(the model's UV download) beside the model file or in $DOPPEL_MODELS_DIR/{model}/ "
                             f"and fit again, or give {UV_LAYOUT_FILE} with uvs and face_uvs")
        return *body.uvs, body.faces
    from reconstruction.body_models import AnnyModel

    body = AnnyModel()
    uvs, face_uvs = body.uvs
    return uvs, face_uvs, body.faces


def _fitted_model(fit_dir: Path, model: str):
    """The SMPL-X / FLAME model a fit was made with (its manifest's model file), or None when it is gone."""
    from doppel.doubles import fitted_model_file
    from reconstruction.body_models import FLAMEModel, SMPLXModel

    path = fitted_model_file(fit_dir)
    if path is None or model not in ("smplx", "flame"):
        return None
    return (SMPLXModel if model == "smplx" else FLAMEModel)(path)


def adopt_uv_layout(rig, fit_dir: str | Path) -> bool:
    """Give the rig of a fit the UV layout the fit carries (FIT/uv_layout.npz: uvs (T, 2) v up, face_uvs (F, 3) for
    the rig's F triangles): `doppel texture` bakes on that layout, so the rig must have it for the albedo to go on
    (SMPL-X / FLAME rigs have none or their model's, which the fit keeps). True when the rig's layout changed;
    False when the fit has none or it is the rig's already; ValueError when it is not for the rig's triangles."""
    f = Path(fit_dir) / UV_LAYOUT_FILE
    if not f.is_file():
        return False
    with np.load(f) as d:
        uvs, face_uvs = np.asarray(d["uvs"], np.float32), np.asarray(d["face_uvs"], np.int64)
    if face_uvs.shape != np.shape(rig.faces) or uvs.ndim != 2 or uvs.shape[1:] != (2,) or \
            face_uvs.min() < 0 or face_uvs.max() >= len(uvs):
        raise ValueError(f"{f}: face_uvs {face_uvs.shape} / uvs {uvs.shape} are not a UV layout of the rig's "
                         f"{len(rig.faces)} triangles")
    if rig.uvs is not None and np.array_equal(rig.uvs, uvs) and np.array_equal(rig.face_uvs, face_uvs):
        return False
    rig.uvs, rig.face_uvs = uvs, face_uvs
    return True


def write_uv_layout(fit_dir: str | Path, out: str | Path) -> Path:
    """OUT (a fit folder's ``uv_layout.npz``): the UV layout of FIT's body model, uvs (T, 2) float32 v up and
    face_uvs (F, 3) int64, so that the fit loads where the body model is not installed (a render node, the
    device machine). Returns the file written."""
    fit_dir, out = Path(fit_dir), Path(out)
    from reconstruction.scan_pipeline import read_fit_params

    uvs, face_uvs, _ = _uv_layout(fit_dir, read_fit_params(fit_dir)["model"])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, uvs=uvs, face_uvs=face_uvs)
    return out


def fitted_frame(fit_dir: str | Path, frames: list[str]) -> str:
    """The session frame (of ``frames``) whose fit is FIT/fit_mesh.ply: the frame its manifest records (`doppel fit
    --frame F`, or a take's first), else the session's first (a scan's fit, an older folder)."""
    from core.errors import ManifestError
    from core.storage import read_manifest

    try:
        frame = read_manifest(fit_dir).get("params", {}).get("frame")
    except (ManifestError, OSError):
        frame = None
    return str(frame) if frame is not None and str(frame) in frames else frames[0]


def load_fit_mesh(fit_dir: str | Path, frames: list[str] | None = None) -> FitMesh:
    """The fit folder's mesh(es): FIT/fit_mesh.ply for the frame it was fitted on (`fitted_frame`) and
    FIT/frames/FRAME/fit_mesh.ply for later frames of a take; ``frames``: the session's frame names (the mesh of
    a fit of frame 004 is frame 004's, not the session's first frame's).
    ValueError when the mesh is not of the UV layout's topology (another body model or a foreign mesh)."""
    from reconstruction.scan_pipeline import read_fit_params

    fit_dir = Path(fit_dir)
    params = read_fit_params(fit_dir)
    verts, faces = _read_ply(fit_dir / "fit_mesh.ply")
    uvs, face_uvs, model_faces = _uv_layout(fit_dir, params["model"])
    if face_uvs.shape != faces.shape or (model_faces is not None and not np.array_equal(model_faces, faces)):
        raise ValueError(f"{fit_dir / 'fit_mesh.ply'}: {len(verts)} vertices / {len(faces)} faces do not match the "
                         f"{params['model']} UV layout ({len(face_uvs)} faces): a fit of another topology")
    out, unfitted = {}, []
    names = frames or ["0"]
    first = fitted_frame(fit_dir, names)
    for name in names:
        p = fit_dir / "fit_mesh.ply" if name == first else fit_dir / "frames" / name / "fit_mesh.ply"
        if name != first and not p.is_file():
            unfitted.append(name)
            continue
        v, f = (verts, faces) if name == first else _read_ply(p)
        if v.shape != verts.shape or not np.array_equal(f, faces):
            raise ValueError(f"{p}: topology differs from {fit_dir / 'fit_mesh.ply'}")
        out[name] = v
    if unfitted:
        log.warning("%s: no fit of the session's frame(s) %s (`doppel fit --frame all` fits every frame); only the "
                    "fitted frame(s) %s are used", fit_dir, ", ".join(unfitted), ", ".join(out))
    return FitMesh(fit_dir, params["model"], out, faces, uvs, face_uvs)


def load_photo(path: Path, camera) -> np.ndarray:
    """(H, W, 3) float32 sRGB in [0, 1] of a session image, undistorted when the camera has lens distortion. A 16-bit
    photo (TIFF, PNG: the usual RAW development for photogrammetry) keeps its 16 bits (the bake's EXR and the
    training see them); it was read as 8-bit."""
    import cv2

    from capture.images import read_image
    from core.conventions import doppel_to_opencv_K

    img = read_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img.dtype not in (np.uint8, np.uint16):        # a 32-bit float TIFF: not a photo's encoding
        raise ValueError(f"{path}: {img.dtype} pixels; session photos are 8- or 16-bit")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if camera.has_distortion:
        K = doppel_to_opencv_K(camera.K.detach().cpu().numpy())
        img = cv2.undistort(img, K, camera.dist.detach().cpu().numpy())
    return img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)


def backdrop_mask(img: np.ndarray) -> np.ndarray:
    """(H, W) bool person mask of a photo in front of a uniform backdrop: pixels farther than
    BACKDROP_THRESHOLD (sRGB) from the median colour of the image border, cleaned by a morphological opening."""
    import cv2

    border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3), img[:, :2].reshape(-1, 3),
                             img[:, -2:].reshape(-1, 3)])
    bg = np.median(border, 0)
    m = (np.abs(img - bg).max(-1) > BACKDROP_THRESHOLD).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return m > 0


def person_mask(masks_dir: Path | None, frame: str, camera: str, img: np.ndarray, multi_frame: bool) -> np.ndarray:
    """The person mask of one photo: MASKS/CAMERA.png or MASKS/FRAME_CAMERA.png (an ingest's masks/, also
    found when MASKS is the ingest folder), else ``backdrop_mask``."""
    if masks_dir is None:
        return backdrop_mask(img)
    import cv2

    from capture.images import read_image

    d = masks_dir / "masks" if (masks_dir / "masks").is_dir() else masks_dir
    p = d / (f"{frame}_{camera}.png" if multi_frame else f"{camera}.png")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no person mask for frame {frame!r}, camera {camera!r}")
    m = read_image(p, cv2.IMREAD_GRAYSCALE)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return m > 127


def check_fit_matches_session(fit: FitMesh, cameras, masks: list[np.ndarray], frame: str) -> float:
    """Mean silhouette IoU of the fitted mesh (frame ``frame``) and the person masks in every camera; ValueError
    when it is below MIN_FIT_IOU (a fit of another actor or another session). A head model's fit (FLAME) covers
    only part of the person: the share of its silhouette inside the masks instead (views that see it), refused
    below MIN_FIT_INSIDE. Masks at the cameras' sizes."""
    import torch

    from neural_render import rasterize

    head_only = fit.model in HEAD_MODELS
    scores = []
    for cam, m in zip(cameras, masks, strict=True):
        with torch.no_grad():
            cov = rasterize(torch.from_numpy(fit.frames[frame]), torch.from_numpy(fit.faces),
                            cam.undistorted()).mask[0].numpy()
        if head_only:
            if cov.any():
                scores.append(float((cov & m).sum() / cov.sum()))
            continue
        union = (cov | m).sum()
        scores.append(float((cov & m).sum() / union) if union else 0.0)
    score = float(np.mean(scores)) if scores else 0.0
    what, floor = ("share of the head's silhouette inside the person masks", MIN_FIT_INSIDE) if head_only \
        else ("silhouette IoU", MIN_FIT_IOU)
    if score < floor:
        raise ValueError(f"{fit.fit_dir}: the fitted mesh does not match the session's photos ({what} "
                         f"{score:.2f} < {floor}): a fit of another actor or another session?")
    return score


def check_session_calibrated(session_dir: Path):
    """load_session, with a one-line error for a session without calibration."""
    from capture.session import load_session

    session_dir = Path(session_dir)
    if session_dir.is_dir() and not (session_dir / "calibration.json").is_file():
        raise ValueError(f"{session_dir}: the session has no calibration.json; calibrate it first "
                         "(`doppel capture calibrate`)")
    return load_session(session_dir)


def scaled_camera(cam, width: int, height: int):
    """A camera for the same view at width x height pixels (K scaled per axis), without distortion."""
    from dataclasses import replace

    import torch

    S = torch.diag(torch.tensor([width / cam.width, height / cam.height, 1.0], dtype=cam.dtype))
    return replace(cam.undistorted(), K=S @ cam.K, width=int(width), height=int(height))
