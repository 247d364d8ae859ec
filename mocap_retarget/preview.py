"""Preview pictures of a retarget: the source skeleton beside the posed double (skeleton, or its mesh
drawn as depth-sorted shaded points), seen from the side, drawn with OpenCV; an mp4 via imageio-ffmpeg."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

BG = (250, 250, 250)
SRC_COLOR = (40, 90, 200)      # RGB
MARKER_COLOR = (120, 120, 120)
TGT_COLOR = (200, 70, 40)
FLOOR_COLOR = (170, 170, 170)


def _view(points: np.ndarray, azimuth_deg: float) -> np.ndarray:
    """Rotate (..., 3) world points about +Y so the camera (looking down -Z in view space) sees them
    from the given azimuth; returns view coordinates (x right, y up, z towards the camera)."""
    a = np.radians(azimuth_deg)
    R = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    return points @ R.T


MIN_PREVIEW_SIZE = 32      # pixels: below this a panel shows nothing readable
MAX_PREVIEW_SIZE = 2048    # pixels: a 2048 x 4096 frame per video frame is already a large preview


def check_preview_size(size: int, option: str = "--preview-size") -> int:
    """``size`` when it is an int in [MIN_PREVIEW_SIZE, MAX_PREVIEW_SIZE]; else ValueError naming ``option``."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not \
            MIN_PREVIEW_SIZE <= size <= MAX_PREVIEW_SIZE:
        raise ValueError(f"{option} must be an integer from {MIN_PREVIEW_SIZE} to {MAX_PREVIEW_SIZE} pixels, "
                         f"got {size!r}")
    return int(size)


def render_frames(source: np.ndarray, source_parents: np.ndarray, target: np.ndarray, target_parents: np.ndarray,
                  frames: np.ndarray, size: int = 320, vertices: np.ndarray | None = None,
                  faces: np.ndarray | None = None, azimuth_deg: float = 60.0, floor_y: float = 0.0,
                  source_floor_y: float | None = None, markers: np.ndarray | None = None) -> list[np.ndarray]:
    """One RGB uint8 image (size, 2*size, 3) per frame index: source skeleton left, double right.
    size: MIN_PREVIEW_SIZE..MAX_PREVIEW_SIZE pixels (ValueError otherwise).

    source (F, Js, 3), target (F, J, 3) joint positions in metres (Doppel frame); vertices (n, V, 3)
    posed mesh for the n = len(frames) frames (optional; faces (T, 3) for its normals); markers (F, M, 3) the
    optical markers a C3D take was solved from, drawn as grey rings around the source skeleton (NaN unseen).
    Each panel follows its character (centred on its hips' horizontal position) at a fixed scale, its
    floor (source_floor_y for the source, default floor_y; floor_y for the double) on the same line.
    """
    import cv2

    check_preview_size(size)
    out = []
    sfloor = floor_y if source_floor_y is None else source_floor_y
    hs = np.percentile(source[frames][..., 1], 99.5) - min(sfloor, source[frames][..., 1].min())
    ht = np.percentile(target[frames][..., 1], 99.5) - min(floor_y, target[frames][..., 1].min())
    height = max(1e-3, float(max(hs, ht)))
    scale = 0.8 * size / (height * 1.1)
    for n, f in enumerate(frames):
        img = np.full((size, 2 * size, 3), BG, dtype=np.uint8)
        for panel, (P, parents, color, fy) in enumerate(((source[f], source_parents, SRC_COLOR, sfloor),
                                                         (target[f], target_parents, TGT_COLOR, floor_y))):
            centre = P[0] * np.array([1.0, 0.0, 1.0])
            ox = panel * size + size / 2

            def px(p, centre=centre, ox=ox, fy=fy):
                v = _view(p - centre, azimuth_deg)
                return np.stack([ox + v[..., 0] * scale, size * 0.92 - (v[..., 1] - fy) * scale], -1)

            # floor line
            fl = px(np.array([[-1.0, fy, 0.0], [1.0, fy, 0.0]]) + centre)
            cv2.line(img, tuple(int(x) for x in fl[0]), tuple(int(x) for x in fl[1]), FLOOR_COLOR, 1, cv2.LINE_AA)
            if panel == 1 and vertices is not None:
                _draw_mesh(img, px, vertices[n], faces, centre, azimuth_deg)
            if panel == 0 and markers is not None:
                for m in px(markers[f][np.isfinite(markers[f]).all(axis=1)]):
                    cv2.circle(img, (int(m[0]), int(m[1])), 3, MARKER_COLOR, 1, cv2.LINE_AA)
            q = px(P)
            for j, p in enumerate(parents):
                if p >= 0:
                    cv2.line(img, (int(q[p, 0]), int(q[p, 1])), (int(q[j, 0]), int(q[j, 1])), color, 2, cv2.LINE_AA)
            for j in range(len(P)):
                cv2.circle(img, (int(q[j, 0]), int(q[j, 1])), 2, color, -1, cv2.LINE_AA)
        cv2.putText(img, f"source  frame {int(f)}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1,
                    cv2.LINE_AA)
        cv2.putText(img, "double", (size + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
        out.append(img)
    return out


_ORTHO_DISTANCE = 100.0   # metres: depth of the pseudo-orthographic view (see _draw_mesh)
_LIGHT = np.array([0.3, 0.5, 0.81])
_SKIN = np.array([225, 190, 170], dtype=np.float64)


def _draw_mesh(img: np.ndarray, px, verts: np.ndarray, faces: np.ndarray | None, centre: np.ndarray,
               azimuth_deg: float) -> None:
    """Draw the posed mesh into ``img`` (H, W, 3) uint8 in place: rasterized with ``neural_render.rasterize``,
    smooth-shaded by a headlight. verts (V, 3) metres; faces (T, 3); px: world points -> panel pixels (the
    panel's orthographic view). Without faces, nothing is drawn.

    The panel's view is orthographic; the rasterizer takes a pinhole camera. Each vertex is therefore placed in
    camera space at depth Z = _ORTHO_DISTANCE - (its depth towards the viewer) with X, Y chosen so that the pinhole
    projection lands exactly on ``px``: pixel positions are exact, the z-order is the view's, and the
    perspective-correct interpolation over a triangle differs from affine by less than 1e-4 of its extent.
    """
    if faces is None:
        return
    import torch

    from capture import Camera
    from neural_render import rasterize

    H, W = img.shape[:2]
    q = px(verts)                                                       # (V, 2) panel pixels
    depth = _view(verts - centre, azimuth_deg)[:, 2]                    # towards the viewer, metres
    Z = _ORTHO_DISTANCE - depth
    f = float(max(H, W))
    cam_pts = np.stack([q[:, 0] * Z / f, q[:, 1] * Z / f, Z], -1)       # K = diag(f, f, 1): projection = q
    cam = Camera.from_opencv(np.diag([f, f, 1.0]), R=np.eye(3), tvec=np.zeros(3), width=W, height=H,
                             name="preview")
    fr = rasterize(torch.as_tensor(cam_pts, dtype=torch.float64), torch.as_tensor(faces, dtype=torch.int64), cam,
                   near=1e-3)
    face_idx = fr.face_idx[0].numpy()
    hit = face_idx >= 0
    if not hit.any():
        return
    normals = _view(_vertex_normals(verts, faces), azimuth_deg)
    n = np.einsum("pk,pkc->pc", fr.bary[0].numpy()[hit], normals[faces[face_idx[hit]]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    shade = np.clip(0.25 + 0.75 * np.abs(n @ _LIGHT), 0, 1)
    img[hit] = (shade[:, None] * _SKIN).astype(np.uint8)


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted vertex normals (not normalised) of a mesh."""
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(verts, dtype=np.float64)
    np.add.at(vn, faces.reshape(-1), np.repeat(n, 3, axis=0))
    return vn


def write_png(path: str | Path, images: list[np.ndarray], columns: int = 2) -> Path:
    """Tile images (each (H, W, 3) uint8) into a grid and write a PNG atomically."""
    import cv2

    from core.storage import atomic_write_bytes

    rows = [np.concatenate(images[i:i + columns] + [np.full_like(images[0], 255)] *
                           max(0, columns - len(images[i:i + columns])), axis=1)
            for i in range(0, len(images), columns)]
    grid = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", grid[..., ::-1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def write_mp4(path: str | Path, images: Iterable[np.ndarray], fps: float,
              mark: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """Write frames (H, W, 3) uint8 sRGB as an H.264 mp4 through imageio-ffmpeg (atomic rename at the end), tagged
    and encoded BT.709 (`capture.video_header.RENDERED`); the frames are padded to multiples of 16 px (white).
    mark: applied to every padded frame as it is encoded (e.g. a pending disclosure's watermark,
    `assets.disclosure.begin_disclosure`)."""
    import os

    import imageio.v2 as imageio

    from capture.video_header import RENDERED, encoder_options
    from core.storage import new_temp_file

    path = Path(path)
    options, vf = encoder_options(RENDERED)      # tagged BT.709, encoded with it
    fd, tmp = new_temp_file(path.parent, f".{path.name}.", ".mp4")   # the mode open() gives: umask or default ACL
    os.close(fd)
    try:
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7, macro_block_size=16,
                                ffmpeg_log_level="error", output_params=options + ["-vf", vf]) as w:
            for im in images:
                h, wd = im.shape[:2]
                pad = np.full(((h + 15) // 16 * 16, (wd + 15) // 16 * 16, 3), 255, dtype=np.uint8)
                pad[:h, :wd] = im
                w.append_data(pad if mark is None else mark(pad))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_disclosed_mp4(path: str | Path, images: Iterable[np.ndarray], fps: float,
                        disclose: Callable[[Path], None] | None) -> Path:
    """`write_mp4`, disclosed: when ``disclose`` has ``begin(name)`` (an `assets.disclosure.Discloser`) the
    pending disclosure it returns marks each frame as it is encoded and signs the written file (one encode); any
    other ``disclose`` is called on the written file; None: a plain `write_mp4`."""
    path = Path(path)
    begin = getattr(disclose, "begin", None)
    pending = begin(path.name) if begin is not None else None
    write_mp4(path, images, fps, mark=None if pending is None else pending.mark)
    if pending is not None:
        pending.finish(path)
    elif disclose is not None:
        disclose(path)
    return path
