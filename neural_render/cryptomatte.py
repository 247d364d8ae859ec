"""Cryptomatte: ID mattes of named parts that a compositor picks in Nuke, Fusion or Blender (the Cryptomatte
specification, Psyop 2015, v1.2), written as extra EXR channels and header attributes beside a frame's colour.

Each name's id is MurmurHash3_32 of its UTF-8 bytes (seed 0; `mmh3`) read as a float32, its exponent nudged off
0 and 255 so that it is never a denormal, infinite or NaN ("uint32_to_float32"). Per pixel the ids found among
its samples are ranked by coverage; rank k is stored in ``<layer>{k // 2:02d}`` as (id, coverage) in R, G
(even k) or B, A (odd k). The header carries ``cryptomatte/<key>/name``, ``hash``, ``conversion`` and ``manifest``
(JSON: name -> id as 8 hex digits), key = the first 7 hex digits of the layer name's hash. A keyer sums, per pixel,
the coverages of the ranks whose id it picked (`matte`).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch
from torch import Tensor

__all__ = ["LEVELS", "name_hash", "name_id", "crypto_channels", "crypto_header", "coverage_ranks", "matte"]

LEVELS = 6          # ranks kept a pixel (3 RGBA channel groups), Blender's and Arnold's default


def name_hash(name: str) -> int:
    """The name's uint32 Cryptomatte hash (MurmurHash3_32, seed 0), its exponent bits kept off 0 and 255."""
    import mmh3

    h = mmh3.hash(name.encode("utf-8"), 0, signed=False)
    exp = (h >> 23) & 255
    if exp in (0, 255):
        h ^= 1 << 23
    return h


def name_id(name: str) -> float:
    """The name's id as the float32 stored in the channels (the hash's bits read as a float)."""
    return struct.unpack("<f", struct.pack("<I", name_hash(name)))[0]


def coverage_ranks(labels, supersample: int, levels: int = LEVELS, n_labels: int | None = None
                   ) -> tuple[Tensor, Tensor]:
    """(label (H, W, levels) int64, -1 where none; coverage (H, W, levels) float32) of each pixel's labels ranked by
    the share of its samples they cover, most first: labels (H * s, W * s) or (K, H * s, W * s) int64 per sample
    (-1: nothing there; K: the same grid at K times, motion blur's), or an iterable of K (H * s, W * s) grids
    taken one at a time (then ``n_labels``, the number of labels, is needed: the grids are not all held at once),
    s = supersample. Ties are ranked by label."""
    s = supersample
    if isinstance(labels, Tensor):
        labels = labels if labels.dim() == 3 else labels[None]
        n = int(labels.max().item()) + 1 if labels.numel() else 0
        grids = list(labels) if n > 0 else []
        H, W = labels.shape[1] // s, labels.shape[2] // s
    else:
        if n_labels is None:
            raise ValueError("coverage_ranks: an iterable of label grids needs n_labels")
        n, grids, H, W = n_labels, labels, None, None
    counts, K = None, 0
    for grid in grids:
        H, W = grid.shape[0] // s, grid.shape[1] // s
        tiles = grid.reshape(H, s, W, s).permute(0, 2, 1, 3).reshape(H, W, s * s)
        counts = torch.zeros((H, W, n + 1), dtype=torch.float32) if counts is None else counts
        counts.scatter_add_(2, (tiles + 1).clamp(min=0), torch.ones_like(tiles, dtype=torch.float32))
        K += 1
    if n <= 0 or counts is None:
        return torch.full((H, W, levels), -1, dtype=torch.int64), torch.zeros((H, W, levels))
    counts = counts[..., 1:] / (K * s * s)                     # the background (-1) dropped
    k = min(levels, n)
    # most samples first; among equals the lower label (a stable order: the same frame gives the same file)
    key = torch.round(counts * (K * s * s)).double() * (n + 1) + (n - torch.arange(n, dtype=torch.float64))
    order = torch.topk(key, k, dim=-1).indices
    cov = torch.gather(counts, -1, order)
    lab = torch.where(cov > 0, order, torch.full_like(order, -1))
    pad = levels - k
    if pad:
        lab = torch.cat([lab, torch.full((H, W, pad), -1, dtype=torch.int64)], -1)
        cov = torch.cat([cov, torch.zeros((H, W, pad))], -1)
    return lab, cov


def crypto_channels(layer: str, names: list[str], labels: Tensor, coverage: Tensor) -> dict[str, np.ndarray]:
    """Channel name -> (H, W) float32 of the Cryptomatte layer ``layer``: labels / coverage (H, W, levels) from
    `coverage_ranks` (label i: names[i]; -1: none, id 0 and coverage 0)."""
    ids = torch.tensor([name_id(n) for n in names] + [0.0], dtype=torch.float32)
    idf = ids[torch.where(labels >= 0, labels, torch.full_like(labels, len(names)))]
    cov = torch.where(labels >= 0, coverage, torch.zeros_like(coverage))
    out = {}
    for k in range(labels.shape[-1]):
        group, (cid, ccov) = k // 2, (("R", "G") if k % 2 == 0 else ("B", "A"))
        out[f"{layer}{group:02d}.{cid}"] = idf[..., k].numpy()
        out[f"{layer}{group:02d}.{ccov}"] = cov[..., k].numpy().astype(np.float32)
    return out


def crypto_header(layer: str, names: list[str]) -> dict[str, str]:
    """The EXR header attributes that declare the layer (its name, hash, conversion and manifest)."""
    key = f"{name_hash(layer):08x}"[:7]
    manifest = {n: f"{name_hash(n):08x}" for n in names}
    return {f"cryptomatte/{key}/name": layer, f"cryptomatte/{key}/hash": "MurmurHash3_32",
            f"cryptomatte/{key}/conversion": "uint32_to_float32",
            f"cryptomatte/{key}/manifest": json.dumps(manifest, separators=(",", ":"))}


def matte(channels: dict[str, np.ndarray], layer: str, names: list[str]) -> np.ndarray:
    """(H, W) float32: the matte a keyer pulls from a Cryptomatte layer for ``names`` (the coverages of every rank
    whose id is one of theirs, summed), from channel name -> (H, W) (Doppel's or another renderer's: "R"/"r")."""
    wanted = np.array([name_id(n) for n in names], np.float32)
    low = {k.lower(): v for k, v in channels.items()}
    out = None
    for group in range(100):
        base = f"{layer}{group:02d}".lower()
        if f"{base}.r" not in low:
            break
        for cid, ccov in (("r", "g"), ("b", "a")):
            hit = np.isin(low[f"{base}.{cid}"].astype(np.float32), wanted)
            part = np.where(hit, low[f"{base}.{ccov}"], 0.0).astype(np.float32)
            out = part if out is None else out + part
    if out is None:
        raise ValueError(f"no Cryptomatte layer {layer!r} in the channels")
    return out
