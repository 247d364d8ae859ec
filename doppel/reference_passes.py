"""Cycles' data passes of a mesh (Depth, Position, Normal, UV, Vector), its Cryptomatte and its motion blur,
rendered by Blender's own renderer: the reference that Doppel's render passes (`neural_render.aovs`,
`neural_render.cryptomatte`) and shot motion blur (`neural_render.motion_blur`) are tested and benchmarked against.
Caller side of the Blender worker's ``render_passes``, ``render_cryptomatte`` and ``render_motion_blur`` tasks
(`assets.cycles_passes`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cycles_passes(verts: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, camera,
                  folder: str | Path) -> dict[str, np.ndarray]:
    """Cycles' passes of the middle frame of verts (3, V, 3) world metres (frames before, at and after it) seen
    by ``camera`` (a single undistorted capture.Camera): {"Depth.Z", "Position.X", ..., "Normal.X", ..., "UV.U",
    "UV.V", "Vector.X", ..., "Vector.W", "Combined.A"} -> (H, W) float32, as Cycles wrote them (Blender's
    conventions; the EXR is kept in ``folder``)."""
    import OpenEXR

    from assets.blender_worker import run_blender_tasks

    out = Path(folder).absolute() / "cycles_passes.exr"
    view = {"K": camera.K.tolist(), "R": camera.R.tolist(), "t": camera.t.tolist(), "width": int(camera.width),
            "height": int(camera.height)}
    arrays = {"vertices": np.asarray(verts, np.float32), "faces": np.asarray(faces, np.int64),
              "uvs": np.asarray(uvs, np.float32), "face_uvs": np.asarray(face_uvs, np.int64)}
    run_blender_tasks([({"kind": "render_passes", "view": view, "out": str(out)}, arrays)])
    found = {}
    with OpenEXR.File(str(out), separate_channels=True) as f:
        for part in f.parts:
            for name, ch in part.channels.items():
                found[name.split(".", 1)[1]] = np.asarray(ch.pixels, np.float32)    # "ViewLayer.Depth.Z"
    return found


def cycles_cryptomatte(verts: np.ndarray, faces: np.ndarray, labels: np.ndarray, names: list[str], camera,
                       folder: str | Path, samples: int = 64) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(channels, header) of Cycles' CryptoMaterial layer of the mesh verts (V, 3) world metres, faces (F, 3), each
    face a material named names[labels[f]], seen by ``camera`` (a single undistorted capture.Camera) with
    ``samples`` a pixel over a 1 px box: {"CryptoMaterial00.r", ... "CryptoMaterial02.a", "Combined.A"} -> (H, W)
    float32 and the EXR's cryptomatte/... attributes (the EXR is kept in ``folder``)."""
    import OpenEXR

    from assets.blender_worker import run_blender_tasks

    out = Path(folder).absolute() / "cycles_cryptomatte.exr"
    view = {"K": camera.K.tolist(), "R": camera.R.tolist(), "t": camera.t.tolist(), "width": int(camera.width),
            "height": int(camera.height)}
    arrays = {"vertices": np.asarray(verts, np.float32), "faces": np.asarray(faces, np.int64),
              "labels": np.asarray(labels, np.int64)}
    run_blender_tasks([({"kind": "render_cryptomatte", "view": view, "out": str(out), "names": list(names),
                        "samples": int(samples)}, arrays)])
    found, header = {}, {}
    with OpenEXR.File(str(out), separate_channels=True) as f:
        for part in f.parts:
            header.update({k: v for k, v in part.header.items() if k.startswith("cryptomatte/")})
            for name, ch in part.channels.items():
                found[name.split(".", 1)[1]] = np.asarray(ch.pixels, np.float32)    # "ViewLayer.CryptoMaterial00.r"
    return found, header


def cycles_motion_blur(verts: np.ndarray, faces: np.ndarray, camera, folder: str | Path, shutter: float,
                       samples: int = 128, steps: int = 3) -> np.ndarray:
    """(H, W) float32 coverage (alpha) of Cycles' render of the middle frame of verts (3, V, 3) world metres
    (frames before, at and after it, linear in time between them) seen by ``camera`` (a single undistorted
    capture.Camera) with a shutter open ``shutter`` frames centred on it (0: none), deformation blur in
    2^(steps - 1) segments, ``samples`` a pixel over a 1 px box (the EXR is kept in ``folder``)."""
    import OpenEXR

    from assets.blender_worker import run_blender_tasks

    out = Path(folder).absolute() / f"cycles_motion_blur_{shutter:g}.exr"
    view = {"K": camera.K.tolist(), "R": camera.R.tolist(), "t": camera.t.tolist(), "width": int(camera.width),
            "height": int(camera.height)}
    arrays = {"vertices": np.asarray(verts, np.float32), "faces": np.asarray(faces, np.int64)}
    run_blender_tasks([({"kind": "render_motion_blur", "view": view, "out": str(out), "shutter": float(shutter),
                         "samples": int(samples), "steps": int(steps)}, arrays)])
    with OpenEXR.File(str(out), separate_channels=True) as f:
        for part in f.parts:
            for name, ch in part.channels.items():
                if name.endswith("Combined.A"):
                    return np.asarray(ch.pixels, np.float32)
    raise ValueError(f"{out}: Cycles wrote no Combined.A channel")
