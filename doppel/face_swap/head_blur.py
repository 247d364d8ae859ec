"""The double's head drawn with the plate camera's motion blur: the mean of renders over the open shutter.

A plate shot with a 180-degree shutter smears a face that turns or moves fast; the double's head drawn sharp into
it reads as pasted on (its eyes and brows crisp in a smeared face). With `SwapConfig.shutter_deg` the head of
frame f is drawn at ``shutter_samples`` times spread over the open shutter (`neural_render.motion_blur`, centred
on the frame), its pose and expression interpolated towards the neighbouring frame of the same shot (rotation
along the shortest arc, translation and expression weights linearly; held at a shot's ends and beside frames
without a face), and the renders averaged premultiplied in linear light.
"""

from __future__ import annotations

import numpy as np

__all__ = ["blurred_head", "head_pose_at"]


def head_pose_at(track, f: int, dt: float, span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,) metres, expression (E,)) of track frame f moved dt frames (|dt| <= 1) towards its
    neighbour: frame f's own when dt is 0 or the neighbour is outside ``span`` [a, b) (the shot between cuts) or
    has no face."""
    from scipy.spatial.transform import Rotation

    g = f + (1 if dt > 0 else -1)
    if dt == 0 or not span[0] <= g < span[1] or not track.valid[g]:
        return track.rotation[f], track.translation[f], track.expression[f]
    a = abs(float(dt))
    r0 = Rotation.from_matrix(track.rotation[f])
    step = (r0.inv() * Rotation.from_matrix(track.rotation[g])).as_rotvec() * a
    R = (r0 * Rotation.from_rotvec(step)).as_matrix()
    t = (1 - a) * track.translation[f] + a * track.translation[g]
    w = (1 - a) * track.expression[f] + a * track.expression[g]
    return R, t, w


def blurred_head(draw, track, f: int, times: np.ndarray, span: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (h, w, 3) float32 sRGB, alpha (h, w) float32): ``draw(R, t, w)`` -> (rgb, alpha) of one pose (the
    head in the shot's box) at each of ``times`` (frames, relative to f), averaged premultiplied in linear light;
    RGB where the mean alpha is 0 is the first render's."""
    import torch

    from neural_render.texture import linear_to_srgb, srgb_to_linear

    renders = [draw(*head_pose_at(track, f, dt, span)) for dt in times]
    if len(renders) == 1:
        return renders[0]
    alpha = np.mean([a for _, a in renders], 0)
    prem = np.mean([srgb_to_linear(torch.as_tensor(rgb)).numpy() * a[..., None] for rgb, a in renders], 0)
    lin = np.where(alpha[..., None] > 1e-6, prem / np.maximum(alpha, 1e-6)[..., None],
                   srgb_to_linear(torch.as_tensor(renders[0][0])).numpy())
    rgb = linear_to_srgb(torch.as_tensor(np.clip(lin, 0, 1))).numpy()
    return rgb.astype(np.float32), alpha.astype(np.float32)
