"""Render passes of a shot (`doppel render shot --aovs`, `neural_render.aovs`) against Cycles' own data passes of
the same mesh and camera: the default double (13 718 vertices) turning, stepping and opening its jaw over three
frames, seen full length and in a face close-up. Prints, over the pixels both cover, the depth and position
differences (mm), the UV difference and the motion vectors' difference (pixels) as their 99.9th percentile and
maximum (a pixel where the two renderers see different surfaces, at an occluding edge or a UV seam, differs by
what lies on either side), the normals' angle (median / 99th percentile / max, degrees); and what the passes cost
a frame on this machine next to Cycles' render of them (one sample a pixel, CPU).

    PYTHONPATH=. python benchmarks/render_passes.py [--size 512] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def moving_double():
    """(3, V, 3) float64 frames of the default double (seed 3), faces, uvs, face_uvs: turned by 0, 3 and 7
    degrees about +Y, stepped 0, 2 and 5 cm along +X, its jaw opening (0, 0.4, 1)."""
    import core  # noqa: F401, I001 - before torch
    import torch

    from doppel.doubles import build_default_rig

    rig, _, _ = build_default_rig("anny", seed=3)
    J = len(rig.joint_names)
    R = torch.zeros(3, J, 3, dtype=torch.float64)
    R[:, 0, 1] = torch.deg2rad(torch.tensor([0.0, 3.0, 7.0], dtype=torch.float64))
    t = torch.tensor([[0.0, 0, 0], [0.02, 0, 0], [0.05, 0, 0]], dtype=torch.float64)
    w = torch.zeros(3, len(rig.blendshape_names), dtype=torch.float64)
    w[:, rig.blendshape_names.index("jawOpen")] = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    with torch.no_grad():
        v = rig.pose(R, t, w).numpy().astype(np.float64)
    return v, np.asarray(rig.faces), np.asarray(rig.uvs), np.asarray(rig.face_uvs)


def look_at(centre, target, size: int, focal: float):
    from capture.camera import Camera

    c, tgt = np.asarray(centre, float), np.asarray(target, float)
    z = (tgt - c) / np.linalg.norm(tgt - c)
    x = np.cross(z, [0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    return Camera.from_opencv(K, R=R, tvec=-R @ c, width=size, height=size)


def size_and_out(doc: str, prefix: str, **more: tuple[type, object]):
    """(arguments: --size (default 512), --out and ``more`` (name -> (type, default)), the output folder: --out
    or a new temporary one) of a benchmark comparing with Cycles."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    for name, (kind, default) in more.items():
        ap.add_argument(f"--{name}", type=kind, default=default)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix=prefix))
    out.mkdir(parents=True, exist_ok=True)
    return args, out


def two_views(verts: np.ndarray, size: int) -> dict:
    """{"full length", "face close-up"}: cameras of ``size`` px on the double whose vertices (V, 3) are given."""
    head = verts[:, 1].max() - 0.12
    return {"full length": look_at((0.6, 1.0, 3.2), (0.0, 0.9, 0.0), size, 1.1 * size),
            "face close-up": look_at((0.15, head + 0.05, 0.6), (0.0, head, 0.0), size, 1.6 * size)}


def _tail(x: np.ndarray) -> list[float]:
    """[99.9th percentile, max]."""
    return [float(np.percentile(x, 99.9)), float(x.max())]


def compare(mine: dict, cy: dict) -> dict:
    """Differences over the pixels both cover."""
    from neural_render.aovs import BACKGROUND_DEPTH

    m = (cy["Combined.A"] > 0.5) & (mine["Z"] < BACKGROUND_DEPTH)
    edge = int(((cy["Combined.A"] > 0.5) != (mine["Z"] < BACKGROUND_DEPTH)).sum())
    n = np.stack([mine[f"N.{a}"] for a in "XYZ"], -1)[m]
    cn = np.stack([cy[f"Normal.{a}"] for a in "XYZ"], -1)[m]
    ang = np.degrees(np.arccos(np.clip((n * cn).sum(-1) / np.linalg.norm(cn, axis=-1), -1, 1)))
    motion = np.max([np.abs(mine[k][m] - s * cy[f"Vector.{c}"][m])
                     for k, c, s in (("backward.u", "X", 1), ("backward.v", "Y", 1), ("forward.u", "Z", -1),
                                     ("forward.v", "W", -1))], axis=0)
    uv = np.maximum(np.abs(mine["uv.u"][m] - cy["UV.U"][m]), np.abs(mine["uv.v"][m] - cy["UV.V"][m]))
    return {"pixels": int(m.sum()), "coverage_differs": edge,
            "depth_mm": _tail(1e3 * np.abs(mine["Z"][m] - cy["Depth.Z"][m])),
            "position_mm": _tail(1e3 * np.max([np.abs(mine[f"P.{a}"][m] - cy[f"Position.{a}"][m]) for a in "XYZ"], 0)),
            "normal_deg": [float(np.median(ang)), float(np.percentile(ang, 99)), float(ang.max())],
            "uv": _tail(uv), "motion_px": _tail(motion),
            "largest_motion_px": float(np.abs(mine["forward.u"][m]).max())}


def main() -> None:
    import core  # noqa: F401, I001 - before torch: OpenMP's passive wait policy (core/runtime.py)
    import torch

    from doppel.reference_passes import cycles_passes
    from neural_render.aovs import ALL_AOVS, frame_aovs

    args, out = size_and_out(__doc__, "render_passes_")
    v, f, uv, fuv = moving_double()
    views = two_views(v[1], args.size)
    vt, ft, uvt, fuvt = (torch.as_tensor(x) for x in (v, f, uv, fuv))
    for name, cam in views.items():
        t0 = time.perf_counter()
        cy = cycles_passes(v, f, uv, fuv, cam, out)
        cycles_s = time.perf_counter() - t0
        frame_aovs(vt, 1, ft, uvt, fuvt, cam, ALL_AOVS)                   # warm
        t0 = time.perf_counter()
        mine = {k: x.numpy() for k, x in frame_aovs(vt, 1, ft, uvt, fuvt, cam, ALL_AOVS).items()}
        mine_s = time.perf_counter() - t0
        r = compare(mine, cy)
        print(f"{name} ({args.size} px): {r['pixels']} pixels, coverage differs at {r['coverage_differs']}; "
              f"depth p99.9 / max {r['depth_mm'][0]:.2f} / {r['depth_mm'][1]:.2f} mm, position "
              f"{r['position_mm'][0]:.2f} / {r['position_mm'][1]:.2f} mm, normals median / p99 / max "
              f"{r['normal_deg'][0]:.2f} / {r['normal_deg'][1]:.2f} / {r['normal_deg'][2]:.2f} deg, uv "
              f"{r['uv'][0]:.5f} / {r['uv'][1]:.5f}, motion {r['motion_px'][0]:.4f} / "
              f"{r['motion_px'][1]:.4f} px (largest motion {r['largest_motion_px']:.1f} px); "
              f"all passes {1e3 * mine_s:.0f} ms a frame, Cycles {cycles_s:.1f} s (worker start included)")


if __name__ == "__main__":
    main()
