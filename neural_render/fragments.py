"""``Fragments``: the per-pixel result of a rasterizer backend (the built-in one in raster.py, pytorch3d's in
p3d_backend.py). Its own module so that both backends import it and neither imports the other's module at
import time (raster.py dispatches to p3d_backend.py; p3d_backend.py needs only this type)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Fragments"]


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterization result for B views of H x W pixels.

    face_idx (B, H, W) int64: index into ``faces`` of the visible face, -1 = background.
    bary (B, H, W, 3): perspective-correct barycentrics of the visible face (0 on background);
        differentiable w.r.t. vertex positions and camera R, t; dtype of the vertices.
    depth (B, H, W): camera-space z in metres of the visible surface, +inf on background.
    """

    face_idx: Tensor
    bary: Tensor
    depth: Tensor

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool, True where a face is visible."""
        return self.face_idx >= 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, H, W)."""
        return tuple(self.face_idx.shape)
