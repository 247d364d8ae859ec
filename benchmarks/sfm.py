"""Structure from motion (`doppel capture calibrate --sfm`) on a rendered rig with known cameras: N cameras (default
24) of 1280x960 on an arc around a textured room with a ChArUco board (the scene of tests/capture/test_sfm.py), run
on 1 thread (the default: the same cameras run after run) and on 2. Prints each run's step times (features,
matching, mapping, scale), registered photos, points, reprojection error, the camera centres' error after a
similarity alignment (mm) and the board's scale error (%), and whether the two 1-thread runs agree to the bit.

    PYTHONPATH=. python benchmarks/sfm.py [--cameras 24] [--size 1280x960]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.charuco import BoardSpec
from capture.npcam import PinholeNP, as_np
from capture.sfm import run_sfm
from doppel.synthetic_capture import intrinsics
from tests.capture.test_sfm import scene, umeyama


def render_rig(folder: Path, n: int, width: int, height: int) -> tuple[list[PinholeNP], BoardSpec]:
    """``n`` photos of the test room into ``folder`` (camNN.png); the true cameras and the board."""
    import cv2

    from capture.camera import Camera
    from neural_render import composite, render_mesh

    spec = BoardSpec(squares_x=5, squares_y=4, square=0.08, marker=0.06)
    verts, faces, uvs, tex = scene(spec)
    cams = []
    for i in range(n):
        a = np.radians(-35 + 70 * i / max(n - 1, 1))
        eye = [1.8 * np.sin(a) - 0.2, 1.0 + 0.3 * (i % 3), 1.8 * np.cos(a) - 0.2]
        cam = PinholeNP.look_at(f"cam{i:02d}", eye, [-0.2, 1.0, -1.0], intrinsics(width, height, 50.0), width, height)
        with torch.no_grad():
            rgba = render_mesh(torch.tensor(verts), torch.tensor(faces), Camera.stack([cam.to_camera(torch.float32)]),
                               uvs=torch.tensor(uvs), texture=torch.tensor(tex), texture_srgb=True, supersample=1)
        im = composite(rgba, (0.3, 0.3, 0.3)).numpy()[0]
        cv2.imwrite(str(folder / f"{cam.name}.png"), cv2.cvtColor((im * 255 + 0.5).astype(np.uint8),
                                                                   cv2.COLOR_RGB2BGR))
        cams.append(cam)
    return cams, spec


def run(folder: Path, work: Path, spec: BoardSpec, truth: list[PinholeNP], threads: int) -> np.ndarray:
    """One SfM run, its line printed; returns the estimated centres (N, 3) in the run's own frame."""
    t = time.perf_counter()
    res = run_sfm(folder, work, board=spec, single_camera=True, num_threads=threads)
    total = time.perf_counter() - t
    est = {c.name: as_np(c) for c in res.cameras}
    names = [c.name for c in truth if c.name in est]
    src = np.array([est[n].center for n in names])
    dst = np.array([c.center for c in truth if c.name in est])
    s, R, t_ = umeyama(src, dst)
    err = np.linalg.norm(s * src @ R.T + t_ - dst, axis=1) * 1000
    steps = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in res.seconds.items())
    print(f"{threads} thread(s): {total:.1f} s ({steps}); {len(res.registered)}/{len(truth)} registered, "
          f"{res.n_points} points, {res.mean_reprojection_px:.3f} px; centres after a similarity: mean "
          f"{err.mean():.1f} / max {err.max():.1f} mm; board scale off by {abs(s - 1) * 100:.2f} %", flush=True)
    return src


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=24)
    ap.add_argument("--size", default="1280x960")
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    print(_contention.machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "photos"
        folder.mkdir()
        t = time.perf_counter()
        truth, spec = render_rig(folder, args.cameras, width, height)
        print(f"{args.cameras} photos of {width}x{height} rendered in {time.perf_counter() - t:.1f} s", flush=True)
        one = [run(folder, Path(d) / f"w1_{k}", spec, truth, 1) for k in range(2)]
        run(folder, Path(d) / "w2", spec, truth, 2)
    print(f"the two 1-thread runs' centres differ by {np.abs(one[0] - one[1]).max():.3g} (COLMAP's units); load "
          f"average {_contention.load_average()}")


if __name__ == "__main__":
    main()
