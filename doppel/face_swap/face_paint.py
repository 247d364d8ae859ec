"""A painted face for a double that has no texture (a FLAME rig has no UVs): skin, eyes, brows and lips painted
from the double's own face landmarks in a frontal projection, so that the head drawn into a plate is a face and
MediaPipe reads it as one (the detector-bias pass reads MediaPipe on the drawn double: on a bare grey head it
finds little to read).

UVs are the head's vertices seen from the front (orthographic along -Z, the double's bind frame: +Y up, facing
+Z), per triangle; triangles facing away from the front take a skin-coloured corner of the texture. The features
are MediaPipe's own contours (`mediapipe.solutions.face_mesh_connections`: eyes, brows, lips) in that projection:
sclera with an iris and pupil at each eye's centre, brows as strokes, lips with the mouth's opening dark. The
colours are a plain mid skin tone; the comp's colour transfer matches them to the plate.
"""

from __future__ import annotations

import numpy as np

SKIN = (0.80, 0.62, 0.52)
SCLERA = (0.86, 0.84, 0.80)
IRIS = (0.32, 0.22, 0.14)
PUPIL = (0.04, 0.03, 0.03)
BROW = (0.26, 0.18, 0.13)
LIPS = (0.72, 0.42, 0.40)
MOUTH = (0.22, 0.08, 0.08)
IRIS_RADIUS = 0.21        # of the eye's width (an iris of ~12 mm in an eye ~30 mm wide, over 2)
PUPIL_RADIUS = 0.4        # of the iris's radius
MARGIN = 0.15             # the texture spans the face's landmarks plus this share on every side
FRONT_FACING = 0.2        # triangles whose normal's +Z component is below this take plain skin


def chains(edges) -> list[list[int]]:
    """The connected polylines and loops of an undirected edge set (pairs of ids), each as its ids in order
    (a loop starts and ends at the same id)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), []).append(int(b))
        adj.setdefault(int(b), []).append(int(a))
    seen: set[int] = set()
    out = []
    for start in sorted(adj, key=lambda n: (len(adj[n]) != 1, n)):      # polylines from an end first
        if start in seen:
            continue
        path, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = next((n for n in adj[cur] if n != prev and (n not in seen or (n == start and len(path) > 2))), None)
            if nxt is None:
                break
            path.append(nxt)
            if nxt == start:
                break
            seen.add(nxt)
            prev, cur = cur, nxt
        out.append(path)
    return out


def contour(edges, points: dict[int, np.ndarray]) -> np.ndarray:
    """(N, 2) a closed contour's points in order (an eye's, a lip line's) from its edges (one loop)."""
    return np.array([points[i] for i in chains(edges)[0]])


def brow_line(edges, points: dict[int, np.ndarray]) -> tuple[np.ndarray, float]:
    """(midline (N, 2), width): a brow from its upper and lower lines (two polylines of MediaPipe's), drawn as a
    stroke (a polygon of the two lines crosses itself where they meet at the ends)."""
    a, b = (np.array([points[i] for i in c]) for c in chains(edges)[:2])
    if np.linalg.norm(a[0] - b[0]) > np.linalg.norm(a[0] - b[-1]):
        b = b[::-1]
    n = min(len(a), len(b))
    return (a[:n] + b[:n]) / 2, float(np.linalg.norm(a[:n] - b[:n], axis=1).mean())


def frontal_uvs(vertices: np.ndarray, faces: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uvs (3F, 2) v up, face_uvs (F, 3)): each triangle's corners seen from the front, in the box (2, 2) =
    [[x0, y0], [x1, y1]] metres mapped to [0, 1]; triangles facing away from the front at the corner (0, 0)."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nz = n[:, 2] / np.maximum(np.linalg.norm(n, axis=1), 1e-20)
    uv = (tri[..., :2] - box[0]) / (box[1] - box[0])
    uv[nz < FRONT_FACING] = 0.0
    return np.clip(uv, 0.0, 1.0).reshape(-1, 2).astype(np.float32), np.arange(3 * len(faces)).reshape(-1, 3)


def paint_face(ids: np.ndarray, landmarks: np.ndarray, vertices: np.ndarray, faces: np.ndarray, size: int = 512
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uvs (3F, 2), face_uvs (F, 3), albedo (size, size, 3) float32 sRGB) of a head (vertices (V, 3) metres,
    faces (F, 3)) from its face landmarks (MediaPipe ids (L,), points (L, 3) in the same frame; the eyes', brows'
    and lips' contours are needed)."""
    import cv2
    from mediapipe.python.solutions import face_mesh_connections as fmc

    pts = {int(i): p[:2] for i, p in zip(ids, landmarks, strict=True)}
    xy = np.array(list(pts.values()))
    lo, hi = xy.min(0), xy.max(0)
    box = np.array([lo - MARGIN * (hi - lo), hi + MARGIN * (hi - lo)])
    px = {i: ((p - box[0]) / (box[1] - box[0]) * [1, -1] + [0, 1]) * size for i, p in pts.items()}   # v up
    img = np.empty((size, size, 3), np.float32)
    img[:] = SKIN

    def fill(poly: np.ndarray, colour, target: np.ndarray) -> None:
        cv2.fillPoly(target, [np.round(poly * 16).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=4)

    for brow in (fmc.FACEMESH_LEFT_EYEBROW, fmc.FACEMESH_RIGHT_EYEBROW):
        mid, width = brow_line(brow, px)
        cv2.polylines(img, [np.round(mid * 16).astype(np.int32)], False, BROW, max(2, round(width)), cv2.LINE_AA, 4)
    for eye in (fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_RIGHT_EYE):
        poly = contour(eye, px)
        inside = np.zeros((size, size), np.float32)
        fill(poly, 1.0, inside)
        ball = np.empty_like(img)
        ball[:] = SCLERA
        centre, r = np.round(poly.mean(0) * 16).astype(int), IRIS_RADIUS * np.ptp(poly[:, 0])
        cv2.circle(ball, tuple(centre), int(r * 16), IRIS, -1, cv2.LINE_AA, 4)
        cv2.circle(ball, tuple(centre), int(PUPIL_RADIUS * r * 16), PUPIL, -1, cv2.LINE_AA, 4)
        img[:] = img * (1 - inside[..., None]) + ball * inside[..., None]
    lips = sorted((np.array([px[i] for i in c]) for c in chains(fmc.FACEMESH_LIPS)), key=lambda c: -np.ptp(c[:, 0]))
    fill(lips[0], LIPS, img)                      # the outer line, then the mouth's opening inside the inner one
    fill(lips[1], MOUTH, img)
    uvs, face_uvs = frontal_uvs(vertices, faces, box)
    return uvs, face_uvs, np.clip(img, 0, 1).astype(np.float32)
