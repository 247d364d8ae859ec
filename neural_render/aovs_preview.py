"""A look at a frame's render passes (`neural_render.aovs`) without a compositing package: one sRGB strip, read
from the frame's EXR, of its colour over grey, then each pass it holds drawn as people read them: depth near
bright and far dark, normals as RGB = (N + 1) / 2, UVs as red and green, forward motion as hue (direction) and
brightness (speed, the fastest pixel full), body-part mattes tinted (head red, hands green, feet blue), a
Cryptomatte layer's labels each in its own colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["passes_strip"]


def _channels(exr: Path) -> dict[str, np.ndarray]:
    import OpenEXR

    with OpenEXR.File(str(exr), separate_channels=True) as f:
        return {k: np.asarray(c.pixels, np.float32) for k, c in f.channels().items()}


def _colour(ch: dict[str, np.ndarray]) -> np.ndarray:
    from neural_render.shot import movie_frame

    rgba = np.stack([ch[k] for k in "RGBA"], -1)
    return movie_frame(rgba).astype(np.float32) / 255.0


def _depth(z: np.ndarray, hit: np.ndarray) -> np.ndarray:
    if not hit.any():
        return np.zeros((*z.shape, 3), np.float32)
    near, far = np.percentile(z[hit], [1, 99])
    d = np.where(hit, 1.0 - 0.85 * np.clip((z - near) / max(far - near, 1e-6), 0, 1), 0.0)
    return np.repeat(d[..., None], 3, -1).astype(np.float32)


def _motion(u: np.ndarray, v: np.ndarray, hit: np.ndarray) -> np.ndarray:
    import cv2

    speed = np.hypot(u, v)
    top = float(speed[hit].max()) if hit.any() else 0.0
    hsv = np.zeros((*u.shape, 3), np.float32)
    hsv[..., 0] = (np.degrees(np.arctan2(v, u)) % 360.0)
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.where(hit, speed / top if top > 0 else 0.0, 0.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _crypto(ch: dict[str, np.ndarray], layer: str) -> np.ndarray:
    """(H, W, 3): each rank's id coloured from its hash's bits, weighted by its coverage, summed."""
    out = np.zeros((*ch[f"{layer}00.R"].shape, 3), np.float32)
    for group in range(100):
        if f"{layer}{group:02d}.R" not in ch:
            break
        for cid, cov in (("R", "G"), ("B", "A")):
            bits = np.ascontiguousarray(ch[f"{layer}{group:02d}.{cid}"], np.float32).view(np.uint32)
            rgb = np.stack([(bits >> s) & 255 for s in (0, 8, 16)], -1).astype(np.float32) / 255.0
            out += ch[f"{layer}{group:02d}.{cov}"][..., None] * (0.3 + 0.7 * rgb) * (bits != 0)[..., None]
    return out


def passes_strip(exr: str | Path) -> tuple[np.ndarray, list[str]]:
    """((H, W * n, 3) uint8 sRGB strip, the tiles' names) of a shot frame's EXR: its colour, then each of depth,
    normal, uv, motion and parts it holds (position is left out: it reads as the normals do, shifted)."""
    ch = _channels(Path(exr))
    hit = ch["Z"] < 1e9 if "Z" in ch else ch["A"] > 0
    tiles, names = [_colour(ch)], ["colour"]
    if "Z" in ch:
        tiles.append(_depth(ch["Z"], hit))
        names.append("depth")
    if "N.X" in ch:
        n = np.stack([ch[f"N.{a}"] for a in "XYZ"], -1)
        tiles.append(np.where(hit[..., None], (n + 1.0) / 2.0, 0.0))
        names.append("normal")
    if "uv.u" in ch:
        tiles.append(np.where(hit[..., None], np.stack([ch["uv.u"], ch["uv.v"], np.zeros_like(ch["uv.u"])], -1), 0))
        names.append("uv")
    if "forward.u" in ch:
        tiles.append(_motion(ch["forward.u"], ch["forward.v"], hit))
        names.append("motion")
    if "matte.head" in ch:          # head red, hands green, feet blue, the rest grey
        tint = {"head": (1.0, 0.25, 0.25), "hands": (0.25, 1.0, 0.25), "feet": (0.25, 0.4, 1.0), "body": (0.55,) * 3}
        tiles.append(sum(ch[f"matte.{p}"][..., None] * np.asarray(c, np.float32) for p, c in tint.items()))
        names.append("parts")
    if "CryptoParts00.R" in ch:     # each label its own colour, mixed by coverage (a keyer's preview)
        tiles.append(_crypto(ch, "CryptoParts"))
        names.append("cryptomatte")
    strip = np.concatenate([np.clip(t, 0.0, 1.0) for t in tiles], 1)
    return (strip * 255.0 + 0.5).astype(np.uint8), names
