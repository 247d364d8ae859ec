"""Tiny test data for the disclosure tests: textured images made here, a workspace with a signing identity."""

from __future__ import annotations

import datetime as _dt
import io

import numpy as np
from PIL import Image

from assets.actors import add_actor
from assets.consent import grant
from assets.signing_keys import init_keys
from assets.workspace import init_workspace


def textured(seed: int, h: int = 192, w: int = 256) -> np.ndarray:
    """(h, w, 3) uint8: smooth colour blobs, edges and fine noise (a stand-in for a render)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(15, 80)
        col = rng.uniform(0, 255, 3)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None] * col
    img += 40 * (np.sin(xx / rng.uniform(3, 9)) > 0)[..., None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img / img.max() * 235 + 10, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def workspace_with_actor(root):
    """A workspace with a signing identity and actor 'jane' with a render consent -> (ws, consent)."""
    ws = init_workspace(root)
    init_keys(ws, org="Test Studio")
    add_actor(ws, "Jane Roe", actor_id="jane")
    consent = grant(ws, "jane", ["render", "rig", "retarget"], "Film",
                    (_dt.date.today() + _dt.timedelta(days=30)).isoformat())
    return ws, consent
