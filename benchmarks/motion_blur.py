"""Motion blur of a shot (`doppel render shot --shutter`, `neural_render.motion_blur`) against Cycles' deformation
motion blur of the same moving mesh and camera: the default double (13 718 vertices) stepping 15 cm and turning 15
degrees a frame (a sprint's speed), seen full length and in a face close-up, a 180-degree shutter centred on the
frame. Both integrate the vertices linearly in time between the frames. Prints, per view, the coverage (alpha)
difference to Cycles' blurred render, mean over the image and over the band either render leaves partly covered
(alpha 0.01-0.99), for Doppel's CGI renderer sharp (16 jitter renders, no shutter) and blurred with 8, 16 and 32
shutter samples (16 jitter renders shared), next to Cycles' own sharp render against its blurred one; and what each
costs a frame on this machine.

    PYTHONPATH=. python benchmarks/motion_blur.py [--size 512] [--samples 128] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.render_passes import size_and_out, two_views

SHUTTER_DEG = 180.0


def sprinting_double():
    """(3, V, 3) float64 frames of the default double (seed 3) turned 0, 15 and 30 degrees about +Y and stepped
    0, 15 and 30 cm along +X, faces, uvs, face_uvs."""
    import core  # noqa: F401, I001 - before torch
    import torch

    from doppel.doubles import build_default_rig

    rig, _, _ = build_default_rig("anny", seed=3)
    R = torch.zeros(3, len(rig.joint_names), 3, dtype=torch.float64)
    R[:, 0, 1] = torch.deg2rad(torch.tensor([0.0, 15.0, 30.0], dtype=torch.float64))
    t = torch.tensor([[0.0, 0, 0], [0.15, 0, 0], [0.30, 0, 0]], dtype=torch.float64)
    with torch.no_grad():
        v = rig.pose(R, t).numpy().astype(np.float64)
    return v, np.asarray(rig.faces), np.asarray(rig.uvs), np.asarray(rig.face_uvs)


def doppel_alpha(model, verts: np.ndarray, camera, samples: int) -> tuple[np.ndarray, float]:
    """((H, W) coverage of the middle frame with ``samples`` shutter samples (1: sharp), 16 jitter renders; ms)."""
    import torch

    from neural_render.motion_blur import MotionBlur, SubframePoser, interpolate_frames
    from neural_render.shot import render_shot_frames

    frames = verts.astype(np.float32)
    poser = SubframePoser(lambda t: torch.as_tensor(interpolate_frames(frames, np.asarray(t) + 1.0)))
    blur = MotionBlur(SHUTTER_DEG, samples) if samples > 1 else None
    t0 = time.perf_counter()
    fr = next(render_shot_frames(model, torch.as_tensor(frames[1:2]), camera.as_batch(), "cgi", jitter=16,
                                 motion_blur=blur, poser=poser))
    return fr.rgba_linear[..., 3], 1000 * (time.perf_counter() - t0)


def compare(a: np.ndarray, ref: np.ndarray) -> str:
    band = ((ref > 0.01) & (ref < 0.99)) | ((a > 0.01) & (a < 0.99))
    d = np.abs(a - ref)
    return f"mean {d.mean():.4f}, band ({band.sum()} px) {d[band].mean():.4f}"


def main() -> None:
    args, out = size_and_out(__doc__, "motion_blur_", samples=(int, 128))
    import torch

    from doppel.reference_passes import cycles_motion_blur
    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig

    torch.set_num_threads(2)
    verts, faces, uvs, face_uvs = sprinting_double()
    model = NeuralDouble(NeuralDoubleConfig(texture_size=64, channels=8, levels=2, width=8, depth=2, cameras=["a"]),
                         torch.as_tensor(faces), torch.as_tensor(uvs, dtype=torch.float32),
                         torch.as_tensor(face_uvs), torch.as_tensor(verts[1], dtype=torch.float32),
                         torch.full((64, 64, 3), 0.5)).eval()
    for name, cam in two_views(verts[1], args.size).items():
        t0 = time.perf_counter()
        ref = cycles_motion_blur(verts, faces, cam, out, SHUTTER_DEG / 360, args.samples)
        t_blur = time.perf_counter() - t0
        t0 = time.perf_counter()
        still = cycles_motion_blur(verts, faces, cam, out, 0.0, args.samples)
        t_still = time.perf_counter() - t0
        print(f"{name} ({args.size} px, Cycles {args.samples} samples: blurred {t_blur:.1f} s, sharp {t_still:.1f} s"
              f" incl. Blender's start; covered {float((ref > 0.01).mean()):.3f} of the image)")
        print(f"  Cycles sharp vs Cycles blurred: {compare(still, ref)}")
        for samples in (1, 8, 16, 32):
            a, ms = doppel_alpha(model, verts, cam, samples)
            what = "sharp (jitter 16)" if samples == 1 else f"{samples} shutter samples"
            print(f"  Doppel {what}: {compare(a, ref)}; {ms:.0f} ms")
            if samples == 1:
                print(f"  Doppel sharp vs Cycles sharp: {compare(a, still)}")


if __name__ == "__main__":
    main()
