"""`doppel texture`: bake the session's photos into the fit's UV space (neural_render.bake) and write the texture
folder: albedo.png (sRGB), albedo.exr (linear, half float), coverage.png, manifest.json.

The texture is the look of the CGI double: `doppel rig --fit FIT --texture DIR` copies it into the rig, so FBX /
USD / glTF exports carry it, and `doppel render train` starts its neural texture from the same bake."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TEXTURE_STAGE = "texture"
TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)


def check_texture_size(size: int) -> int:
    if size not in TEXTURE_SIZES:
        raise ValueError(f"--size must be one of {', '.join(map(str, TEXTURE_SIZES))} texels, got {size}")
    return size


def session_views(session_dir: Path, fit_dir: Path, masks_dir: Path | None = None, frame: str | None = None,
                  cameras: list[str] | None = None):
    """(session, fit, frame, cameras, photo, masks list of (H, W) bool) of one frame (default: the first), after the
    checks: calibrated session, fit of this topology and this actor. photo(i): camera i's photo (H, W, 3) sRGB
    float32, read when called: the photos held at once were 3.2 GB for 16 cameras at 4096 px."""
    from doppel.neural_inputs import (
        check_fit_matches_session,
        check_session_calibrated,
        load_fit_mesh,
        load_photo,
        person_mask,
    )

    session = check_session_calibrated(session_dir)
    names = list(session.frames)
    fit = load_fit_mesh(fit_dir, names)
    frame = frame or next(iter(fit.frames))                 # the frame the fit was made on
    if frame not in fit.frames:
        raise ValueError(f"{fit_dir}: no fit of frame {frame!r} of {session_dir} (fitted: "
                         f"{', '.join(fit.frames)})")
    cams = [session.camera(c) for c in (cameras or session.camera_names)]
    cams = [c for c in cams if c.name in session.frames[frame]]     # not those that dropped a take's frame
    if not cams:
        raise ValueError(f"{session_dir}: frame {frame!r} has no image of the cameras asked for")
    def photo(i: int) -> np.ndarray:
        return load_photo(session.frames[frame][cams[i].name], cams[i])

    masks = [person_mask(masks_dir, frame, c.name, photo(i), len(names) > 1) for i, c in enumerate(cams)]
    check_fit_matches_session(fit, cams, masks, frame)
    return session, fit, frame, cams, photo, masks


def bake_session(session_dir: Path, fit_dir: Path, out: Path, size: int = 2048, masks_dir: Path | None = None,
                 cameras: list[str] | None = None, progress: Callable[[int, int], None] | None = None,
                 params: dict | None = None) -> dict:
    """Bake the photos of the frame the fit was made on (``cameras``: a subset, default all) onto it and write the
    texture folder ``out`` (already a staging folder: see core.stage_folders). Returns the metrics."""
    import torch

    from capture.camera import Camera
    from core.meshio import write_png
    from core.storage import atomic_write_json, write_manifest
    from neural_render.bake import BakeConfig, bake_texture
    from neural_render.image_io import write_exr
    from neural_render.neural_double import topology_signature
    from neural_render.texture import linear_to_srgb, srgb_to_linear

    check_texture_size(size)
    session, fit, frame, cams, photo, masks = session_views(session_dir, fit_dir, masks_dir, cameras=cameras)
    res = bake_texture(torch.from_numpy(fit.frames[frame]), torch.from_numpy(fit.faces), torch.from_numpy(fit.uvs),
                       torch.from_numpy(fit.face_uvs), Camera.stack([c.undistorted() for c in cams]),
                       lambda i: srgb_to_linear(torch.from_numpy(photo(i))), [torch.from_numpy(m) for m in masks],
                       BakeConfig(size=size), progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / "albedo.png", linear_to_srgb(res.texture).numpy())
    write_exr(out / "albedo.exr", res.texture.numpy())
    write_png(out / "coverage.png", np.repeat(res.coverage.numpy()[..., None], 3, -1))
    islands = res.islands.numpy()
    metrics = {"size": size, "frame": frame, "views": len(cams),
               "seen_fraction_of_islands": round(float(res.seen.numpy()[islands].mean()), 4),
               "views_used": res.views_used,
               "signature": topology_signature(fit.faces, fit.uvs, fit.face_uvs, len(fit.frames[frame]))}
    atomic_write_json(out / "metrics.json", metrics)
    write_manifest(out, TEXTURE_STAGE, inputs={"calibration": Path(session_dir) / "calibration.json",
                                               "fit_params": Path(fit_dir) / "params.json",
                                               "fit_mesh": Path(fit_dir) / "fit_mesh.ply"},
                   params={"size": size, "frame": frame, "cameras": [c.name for c in cams], **dict(params or {})},
                   outputs={"albedo": "albedo.png", "albedo_exr": "albedo.exr", "coverage": "coverage.png",
                            "metrics": "metrics.json"},
                   extra={"texture": {"signature": metrics["signature"], "colour": "albedo.png sRGB, albedo.exr linear",
                                      "note": "photo radiance baked with the capture's lighting"}})
    return metrics


def texture_for_rig(texture_dir: Path, rig) -> Path:
    """TEXTURE/albedo.png after checking that the texture was baked on the rig's topology and UV layout
    (ValueError naming the folder otherwise)."""
    from core.storage import read_manifest
    from neural_render.neural_double import topology_signature

    texture_dir = Path(texture_dir)
    png = texture_dir / "albedo.png"
    if not png.is_file():
        raise FileNotFoundError(f"{png}: not found; is {texture_dir} a `doppel texture` output folder?")
    sig = read_manifest(texture_dir).get("texture", {}).get("signature")
    if rig.uvs is None:
        raise ValueError(f"--texture {texture_dir}: the rig has no UVs to carry a texture")
    mine = topology_signature(rig.faces, rig.uvs, rig.face_uvs, rig.num_vertices)
    if sig != mine:
        raise ValueError(f"--texture {texture_dir}: baked on another topology / UV layout than the rig")
    return png
