"""Procedural albedo for the virtual actor, painted in its UV space.

Each texel is traced back to the surface point it covers (a rasteriser in UV space gives the face and
barycentrics), and the colour is a function of that point's rest-pose position and the face's body
region (anny's body-part segmentation): skin with low-frequency tone variation and warmer cheeks,
darker brows, red lips, hair on the scalp, eye whites with coloured irises and pupils, and simple
clothes (a t-shirt and shorts), so that face and pose detectors see a person in the renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.conventions import PIXEL_CENTER_OFFSET

# Region ids, from anny's body-part segmentation (data/segmentation/body_parts_segmentation.*).
REGIONS = {
    "body": 0, "head": 1, "hand.L": 2, "hand.R": 3, "foot.L": 4, "foot.R": 5,
    "eye_front.L": 6, "eye_front.R": 7, "eye_back.L": 8, "eye_back.R": 9,
    "eye_cavity.L": 10, "eye_cavity.R": 11, "mouth_cavity": 12, "tongue": 13,
}


@lru_cache(maxsize=1)
def _segmentation() -> tuple[np.ndarray, dict[str, list[int]]]:
    import anny.paths
    import yaml
    from PIL import Image

    root = Path(anny.paths.get_anny_root_dir()) / "data" / "segmentation"
    image = np.asarray(Image.open(root / "body_parts_segmentation.png").convert("RGB"))
    colors = yaml.safe_load((root / "body_parts_segmentation.yaml").read_text())["colors"]
    return image, colors


def face_regions(uvs: np.ndarray, face_uvs: np.ndarray) -> np.ndarray:
    """uvs (T, 2), face_uvs (F, 3) -> (F,) int8 region ids (REGIONS), looked up at each face's UV centroid."""
    image, colors = _segmentation()
    h, w = image.shape[:2]
    centre = uvs[face_uvs].mean(axis=1)
    col = np.clip(np.round(centre[:, 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(np.round((1.0 - centre[:, 1]) * h).astype(np.int64), 0, h - 1)
    rgb = image[row, col]
    out = np.zeros(len(face_uvs), dtype=np.int8)
    for name, rid in REGIONS.items():
        out[np.all(rgb == np.asarray(colors[name]), axis=-1)] = rid
    return out


def rasterize_uv(uv_tris: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise triangles in texture space.

    uv_tris (F, 3, 2) texture coordinates in [0, 1] (v up); size: texture width = height in texels.
    Returns face (size, size) int64 (-1 = no face) and bary (size, size, 3) float64, for texel centres.
    """
    px = np.empty_like(uv_tris, dtype=np.float64)
    px[..., 0] = uv_tris[..., 0] * size
    px[..., 1] = (1.0 - uv_tris[..., 1]) * size
    lo = np.floor(px.min(axis=1) - PIXEL_CENTER_OFFSET).astype(np.int64).clip(0, size - 1)
    hi = np.ceil(px.max(axis=1) - PIXEL_CENTER_OFFSET).astype(np.int64).clip(0, size - 1)
    bw, bh = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = bw * bh
    tri = np.repeat(np.arange(len(px)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    x = lo[tri, 0] + local % bw[tri]
    y = lo[tri, 1] + local // bw[tri]
    p = np.stack([x + PIXEL_CENTER_OFFSET, y + PIXEL_CENTER_OFFSET], axis=-1)
    a, b, c = px[tri, 0], px[tri, 1], px[tri, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, np.nan, den)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    l0 = 1.0 - l1 - l2
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    face = np.full((size, size), -1, dtype=np.int64)
    bary = np.zeros((size, size, 3))
    face[y[inside], x[inside]] = tri[inside]
    bary[y[inside], x[inside]] = np.stack([l0, l1, l2], axis=-1)[inside]
    return face, bary


def _value_noise(points: np.ndarray, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth pseudo-random field in [-1, 1] over 3D points (N, 3), as a sum of random sinusoids."""
    out = np.zeros(len(points))
    for o in range(octaves):
        freq = 6.0 * (2.0 ** o)
        dirs = rng.normal(size=(3, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        phase = rng.uniform(0, 2 * np.pi, size=3)
        out += sum(np.sin(freq * points @ d + ph) for d, ph in zip(dirs, phase, strict=True)) / (3 * 2.0 ** o)
    return out / 1.9


@dataclass(frozen=True)
class _Surface:
    """The painted texels' surface points and this body's landmarks, from its own rest geometry (metres)."""

    pos: np.ndarray            # (n, 3) rest-pose point of each covered texel
    reg: np.ndarray            # (n,) region id of each covered texel
    rest_vertices: np.ndarray  # (V, 3)
    faces: np.ndarray          # (F, 3)
    regions: np.ndarray        # (F,) region id per face
    eye_l: np.ndarray
    eye_r: np.ndarray
    eye_y: float
    face_front_z: float
    mouth: np.ndarray
    height: float

    def centroid(self, name: str) -> np.ndarray:
        sel = np.unique(self.faces[self.regions == REGIONS[name]])
        return self.rest_vertices[sel].mean(axis=0)

    def has(self, name: str) -> bool:
        return bool((self.regions == REGIONS[name]).any())


def _surface(rest_vertices, faces, regions, pos, reg) -> _Surface:
    def centroid(name: str) -> np.ndarray:
        return rest_vertices[np.unique(faces[regions == REGIONS[name]])].mean(axis=0)

    eye_l, eye_r = centroid("eye_front.L"), centroid("eye_front.R")
    head_v = np.unique(faces[regions == REGIONS["head"]])
    return _Surface(pos=pos, reg=reg, rest_vertices=rest_vertices, faces=faces, regions=regions, eye_l=eye_l,
                    eye_r=eye_r, eye_y=0.5 * (eye_l[1] + eye_r[1]), face_front_z=rest_vertices[head_v, 2].max(),
                    mouth=centroid("mouth_cavity"), height=rest_vertices[:, 1].max() - rest_vertices[:, 1].min())


def paint_albedo(rest_vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
                 regions: np.ndarray, seed: int, size: int = 1024) -> np.ndarray:
    """Paint the actor's albedo.

    rest_vertices (V, 3) metres, Doppel frame (+Y up, facing +Z); faces (F, 3); uvs (T, 2); face_uvs (F, 3);
    regions (F,) from face_regions. Returns (size, size, 3) float32 sRGB in [0, 1].
    The seeded draws happen in a fixed order (skin, hair, eyes, clothes): same seed, same texture.
    """
    rng = np.random.default_rng([seed, 0xA1BED0])
    face, bary = rasterize_uv(uvs[face_uvs], size)
    covered = face >= 0
    f = face[covered]
    pos = np.einsum("nk,nkc->nc", bary[covered], rest_vertices[faces[f]])
    surf = _surface(rest_vertices, faces, regions, pos, regions[f])
    col, base, noise = _paint_skin(surf, rng)
    _paint_hair_brows_lips(col, surf, base, noise, rng)
    _paint_eyes_and_mouth(col, surf, rng)
    _paint_clothes(col, surf, noise, rng)
    tex = np.zeros((size, size, 3))
    tex[covered] = np.clip(col, 0.0, 1.0)
    tex = _dilate(tex, covered, iterations=max(2, size // 128))
    return tex.astype(np.float32)


def _paint_skin(surf: _Surface, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded base tone with low-frequency variation and warmer cheeks -> (colours (n, 3), base tone (3,),
    noise (n,))."""
    tones = np.array([[0.93, 0.76, 0.65], [0.85, 0.64, 0.50], [0.70, 0.50, 0.36], [0.50, 0.34, 0.24],
                      [0.36, 0.24, 0.17]])
    t = rng.uniform(0, len(tones) - 1)
    i0 = int(np.floor(t))
    base = tones[i0] * (1 - (t - i0)) + tones[min(i0 + 1, len(tones) - 1)] * (t - i0)
    noise = _value_noise(surf.pos, rng)
    col = base[None] * (1.0 + 0.06 * noise[:, None])
    for eye in (surf.eye_l, surf.eye_r):
        cheek = eye + np.array([0.0, -0.035, 0.0])
        d = np.linalg.norm((surf.pos - cheek) * np.array([1.0, 1.2, 0.5]), axis=1)
        col += (np.exp(-(d / 0.02) ** 2) * 0.08)[:, None] * np.array([0.6, -0.3, -0.3])
    return col, base, noise


def _paint_hair_brows_lips(col: np.ndarray, surf: _Surface, base: np.ndarray, noise: np.ndarray,
                           rng: np.random.Generator) -> None:
    """Brows (arcs above each eye), lips (a lens around the mouth) and scalp hair, in place."""
    pos = surf.pos
    on_head = surf.reg == REGIONS["head"]
    front = pos[:, 2] > surf.face_front_z - 0.06
    hair_col = np.array([0.08, 0.06, 0.05]) + rng.uniform(0, 0.25) * np.array([0.55, 0.35, 0.2])
    for eye in (surf.eye_l, surf.eye_r):
        dx = pos[:, 0] - eye[0]
        arch = eye[1] + 0.022 + 0.006 * np.cos(np.clip(dx / 0.025, -1.5, 1.5) * 1.0)
        brow = on_head & front & (np.abs(dx) < 0.024) & (np.abs(pos[:, 1] - arch) < 0.0045)
        col[brow] = hair_col
    lip_w, lip_h = 0.026, 0.009
    ux = (pos[:, 0] - surf.mouth[0]) / lip_w
    uy = (pos[:, 1] - (surf.mouth[1] + 0.002)) / lip_h
    lips = on_head & front & (np.abs(ux) < 1.0) & (np.abs(uy) < (1.0 - ux ** 2))
    col[lips] = np.array([0.70, 0.30, 0.30]) * (0.8 + 0.2 * base[0])
    scalp = on_head & ((pos[:, 1] > surf.eye_y + 0.065) |
                       ((pos[:, 1] > surf.eye_y - 0.02) & (pos[:, 2] < surf.eye_l[2] - 0.085)))
    col[scalp] = hair_col * (1.0 + 0.15 * noise[scalp, None])


def _paint_eyes_and_mouth(col: np.ndarray, surf: _Surface, rng: np.random.Generator) -> None:
    """Sclera, iris and pupil by the angle from each eyeball's forward (+Z) axis; cavities and tongue."""
    iris_col = [np.array([0.25, 0.15, 0.08]), np.array([0.20, 0.35, 0.55]), np.array([0.25, 0.40, 0.25])][
        int(rng.integers(0, 3))]
    reg = surf.reg
    for name in ("eye_front.L", "eye_front.R", "eye_back.L", "eye_back.R"):
        sel = reg == REGIONS[name]
        if not sel.any():
            continue
        side = name[-1]
        centre = surf.centroid(f"eye_back.{side}") if surf.has(f"eye_back.{side}") else surf.centroid(name)
        d = surf.pos[sel] - centre
        d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
        ang = np.arccos(np.clip(d[:, 2], -1, 1))
        c = np.tile(np.array([0.92, 0.90, 0.88]), (sel.sum(), 1))
        c[ang < 0.55] = iris_col
        c[ang < 0.22] = np.array([0.03, 0.03, 0.03])
        col[sel] = c
    inner = np.isin(reg, [REGIONS["eye_cavity.L"], REGIONS["eye_cavity.R"], REGIONS["mouth_cavity"]])
    col[inner] = np.array([0.35, 0.12, 0.12])
    col[reg == REGIONS["tongue"]] = np.array([0.75, 0.35, 0.38])


def _paint_clothes(col: np.ndarray, surf: _Surface, noise: np.ndarray, rng: np.random.Generator) -> None:
    """Shorts and a short-sleeved t-shirt, by height on the body (rest pose), in place."""
    pos, reg = surf.pos, surf.reg
    y = pos[:, 1] / surf.height
    torso = (reg == REGIONS["body"])
    shirt_col = rng.uniform(0.15, 0.85, size=3)
    shorts_col = rng.uniform(0.05, 0.35, size=3)
    shoulder_x = 0.11 * surf.height
    shirt = torso & (y > 0.56) & (y < 0.81) & (np.abs(pos[:, 0]) < shoulder_x + 0.05)
    shorts = torso & (y > 0.40) & (y <= 0.56)
    col[shirt] = shirt_col * (1.0 + 0.05 * noise[shirt, None])
    col[shorts] = shorts_col * (1.0 + 0.05 * noise[shorts, None])
    col[np.isin(reg, [REGIONS["foot.L"], REGIONS["foot.R"]])] *= 0.95


def _dilate(tex: np.ndarray, covered: np.ndarray, iterations: int) -> np.ndarray:
    """Grow painted texels into empty ones (gutter padding), so bilinear lookups at UV seams stay on colour."""
    import cv2

    tex = tex.copy()
    mask = covered.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(iterations):
        grown = cv2.dilate(mask, kernel)
        ring = (grown > 0) & (mask == 0)
        if not ring.any():
            break
        summed = cv2.boxFilter(tex * mask[..., None], -1, (3, 3), normalize=False)
        count = cv2.boxFilter(mask.astype(np.float64), -1, (3, 3), normalize=False)
        tex[ring] = summed[ring] / np.maximum(count[ring], 1)[:, None]
        mask = grown
    return tex
