"""`FaceTake`: a face performance (per frame a head rotation and the rig's expression weights), whatever it was
read from (`doppel.face_performance`: a swap's face track; `doppel.arkit_csv`: an ARKit CSV)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import DoppelError


class FaceTakeError(DoppelError, ValueError):
    """A face track that cannot become an animation of this rig (one line, naming the file)."""


@dataclass
class FaceTake:
    """A face performance: F frames. rotation (F, 3, 3): the double's bind frame -> the plate camera (OpenCV);
    valid (F,) frames where a face was tracked; blendshape_names (N,) and blendshape_weights (F, N): the rig's
    own controls; jaw_rad (F,) radians or None; fps; cuts: frame indices (from 0) where another shot starts;
    source: the file it was read from; has_head: whether rotation was read (else the identity)."""

    rotation: np.ndarray
    valid: np.ndarray
    blendshape_names: list[str]
    blendshape_weights: np.ndarray
    jaw_rad: np.ndarray | None
    fps: float
    cuts: list[int]
    source: str
    has_head: bool = True        # False: the take carries no head rotation (rotation is the identity)

    @property
    def num_frames(self) -> int:
        return int(self.rotation.shape[0])
