"""`FaceTake`: a face performance (per frame a head rotation and the rig's expression weights), whatever it was
read from (`doppel.face_take_read`: a swap's face track; `doppel.arkit_csv`: an ARKit CSV)."""

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


def resample_take(take: FaceTake, fps: float, frames: int, offset_s: float = 0.0) -> FaceTake:
    """``take`` on another clock: ``frames`` frames at ``fps``, frame k at the take's time k / fps - offset_s (the
    take starts ``offset_s`` seconds into the new clock). Rotations are interpolated along the shortest arc between
    the two nearest frames, weights and the jaw linearly; a frame between two tracked frames is tracked (the solve
    bridged any gap between them), one outside the take's span is not (it holds the nearest, downstream)."""
    import roma
    import torch

    F = take.num_frames
    s = (np.arange(frames) / fps - offset_s) * take.fps          # fractional source frame of each new frame
    inside = (s >= -1e-9) & (s <= F - 1 + 1e-9)
    s = np.clip(s, 0, F - 1)
    i0 = np.floor(s).astype(int)
    i1 = np.minimum(i0 + 1, F - 1)
    a = s - i0
    R0, R1 = torch.from_numpy(take.rotation[i0]), torch.from_numpy(take.rotation[i1])
    step = roma.rotmat_to_rotvec(R0.transpose(-1, -2) @ R1) * torch.from_numpy(a)[:, None]
    R = (R0 @ roma.rotvec_to_rotmat(step)).numpy()

    def lerp(v):
        return None if v is None else (1 - a.reshape(-1, *[1] * (v.ndim - 1))) * v[i0] + \
            a.reshape(-1, *[1] * (v.ndim - 1)) * v[i1]

    valid = inside & take.valid[i0] & take.valid[i1]
    cuts = sorted({int(np.ceil(c / take.fps * fps + offset_s * fps)) for c in take.cuts} & set(range(1, frames)))
    return FaceTake(R, valid, list(take.blendshape_names), lerp(take.blendshape_weights), lerp(take.jaw_rad),
                    float(fps), cuts, take.source, take.has_head)
