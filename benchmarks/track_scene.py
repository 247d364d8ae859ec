"""A swap's face track as a 3D scene (`doppel export RIG --track SWAP_DIR`), read back the way a compositor's tools
would: the Alembic file by Blender's Alembic reader (points and camera; Blender's own camera matrices project the
points), the USD file by usd-core (the camera's frustum projects them). Both are compared, at every frame, with
where the swap drew the head (`render_head.project` of the track), and overlay images of the file's head (its
triangles' edges, from the Alembic read-back) on the plate's frames are written for people to look at.

    PYTHONPATH=. python benchmarks/track_scene.py SWAP_DIR --rig RIG_DIR --plate PLATE.mp4 [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def usd_pixels(path: Path, frames: list[int], size: tuple[int, int]) -> np.ndarray:
    from pxr import Gf, Usd, UsdGeom

    stage = Usd.Stage.Open(str(path))
    cam = UsdGeom.Camera(stage.GetPrimAtPath("/scene/plate_camera"))
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/scene/double_head"))
    W, H = size
    out = []
    for f in frames:
        proj = cam.GetCamera(f).frustum.ComputeProjectionMatrix()
        ndc = np.array([proj.Transform(Gf.Vec3d(*p)) for p in np.array(mesh.GetPointsAttr().Get(f), np.float64)])[:, :2]
        out.append(np.stack([(ndc[:, 0] + 1) / 2 * W, (1 - ndc[:, 1]) / 2 * H], 1))
    return np.stack(out)


def overlays(plate: Path, pixels: np.ndarray, faces: np.ndarray, out: Path, picks: list[int]) -> list[Path]:
    import cv2
    import imageio.v3 as iio

    written = []
    for k in picks:
        img = np.ascontiguousarray(iio.imread(plate, index=k)[..., :3][..., ::-1])
        pts = np.round((pixels[k] - 0.5) * 16).astype(np.int32)            # Doppel px -> OpenCV, 4 bits sub-pixel
        edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
        for a, b in edges[::3]:
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), (80, 255, 80), 1, cv2.LINE_AA, shift=4)
        path = out / f"overlay_{k:04d}.png"
        cv2.imwrite(str(path), img)
        written.append(path)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("swap", type=Path)
    ap.add_argument("--rig", type=Path, required=True)
    ap.add_argument("--plate", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("/tmp/doppel_track_scene"))
    args = ap.parse_args()
    from assets.blender_worker import run_blender_tasks
    from assets.export.fbx import evaluation_task
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.render_head import project
    from doppel.face_swap.track_scene import read_tracks, track_scene
    from doppel.face_swap.track_scene_files import write_track_scene

    args.out.mkdir(parents=True, exist_ok=True)
    data = read_tracks(args.swap)
    double = load_face_double(args.rig, args.out, albedo_size=64)
    scene = track_scene(data, double)
    F, (W, H) = len(scene.valid), scene.size
    want = np.stack([double.head_mesh(w) @ R.T + t for R, t, w in
                     zip(data["rotation"], data["translation"], data["expression"], strict=True)])
    want = np.stack([project(want[f], np.eye(3), np.zeros(3), scene.K) for f in range(F)])
    print(f"{args.swap}: {F} frames of {W}x{H} at {scene.fps:g} fps, {len(scene.untracked_frames)} without a face; "
          f"the double's head: {scene.points.shape[1]} vertices, {len(scene.faces)} triangles")
    for suffix in (".abc", ".usda"):
        t0 = time.perf_counter()
        path = write_track_scene(scene, args.out / f"head_track{suffix}", provenance={"source": "benchmark"})
        dt = time.perf_counter() - t0
        frames = list(range(scene.first_frame, scene.first_frame + F))
        if suffix == ".abc":
            task, arrays = evaluation_task(path, list(range(F)), scene.fps)
            task["camera_size"] = [W, H]
            (res,) = run_blender_tasks([(task, arrays)])
            got, reader = res.arrays["pixels"], "Blender's Alembic reader + camera matrices"
            abc_pixels = got
        else:
            got, reader = usd_pixels(path, frames, (W, H)), "usd-core, the camera's frustum"
        err = np.linalg.norm(got - want, axis=-1)
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB written in {dt:.1f} s; read back by {reader}: the "
              f"head {err.max():.4f} px max ({err.mean():.5f} mean) from where the swap drew it, over {F} frames")
    picks = sorted({0, F // 2, F - 1})
    shots = overlays(args.plate, abc_pixels, scene.faces, args.out, picks)
    print(f"overlays of the Alembic head on the plate: {', '.join(str(p) for p in shots)}")


if __name__ == "__main__":
    main()
