"""Structure from motion (`doppel capture calibrate --sfm`) on a rendered rig with known cameras.

Two layouts: ``arc`` (default), N cameras (default 24) of 1280x960 on an arc of 70 degrees around a textured room
with a ChArUco board (the scene of tests/capture/test_sfm.py); ``ring``, N cameras on a full circle at two heights
around a textured pillar in a closed room (each wall and face its own texture, the board on one face of the
pillar), a capture rig's layout where cameras on opposite sides share nothing. Prints each run's step times
(features, matching, mapping, scale), the pairs of photos matched, registered photos, points, reprojection error,
the camera centres' error after a similarity alignment (mm) and the board's scale error (%).

Without --matching: one run on one thread everywhere, two with the features and the matching on every core (the
default; whether their cameras agree with the one-thread run's to the bit is printed), and one with the mapper on
two threads as well, matching as the product's default does. With --matching exhaustive,retrieval: one run each on
--threads (0, the default: every core) and --mapper-threads (default 1), the same photos (retrieval against every
pair).

    PYTHONPATH=. python benchmarks/sfm.py [--cameras 24] [--size 1280x960]
    PYTHONPATH=. python benchmarks/sfm.py --layout ring --cameras 96 --size 1024x768 \
        --matching retrieval,exhaustive
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
from doppel.synthetic_capture import board_texture, intrinsics
from tests.capture.test_sfm import quad, scene, umeyama


def ring_scene(spec: BoardSpec):
    """A closed room 6 m square (four walls and a floor) around a pillar 0.7 m square and 2 m high, every surface
    its own noise texture (a 4 x 4 atlas of 512 px cells), the board on the pillar's +z face. (verts, faces, uvs,
    texture) as `scene`."""
    import cv2

    rng = np.random.default_rng(0)
    size, cells = 2048, 4
    cell = size // cells
    tex = np.zeros((size, size, 3), np.float32)
    for k in range(cells * cells):
        r, c = divmod(k, cells)
        coarse = cv2.resize(rng.random((cell // 8, cell // 8, 3)), (cell, cell), interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(rng.random((cell // 2, cell // 2, 3)), (cell, cell))
        tex[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = np.clip(0.5 * coarse + 0.5 * fine, 0, 1)
    board = board_texture(spec, 64).astype(np.float32) / 255.0
    bh, bw = board.shape
    tex[:bh, size - bw:] = board[..., None]            # the first row of cells holds the board

    def uv(k):                                         # surface k's cell (v up), from the second row
        r, c = divmod(k + cells, cells)
        return (c / cells + 1 / size, 1 - (r + 1) / cells + 1 / size), ((c + 1) / cells - 1 / size,
                                                                       1 - r / cells - 1 / size)

    R, H, P = 3.0, 2.5, 0.35
    surfaces = [  # (top-left corner, across, down): four walls, the floor, the pillar's four faces
        ([-R, H, -R], [2 * R, 0, 0], [0, -H, 0]), ([R, H, R], [-2 * R, 0, 0], [0, -H, 0]),
        ([-R, H, R], [0, 0, -2 * R], [0, -H, 0]), ([R, H, -R], [0, 0, 2 * R], [0, -H, 0]),
        ([-R, 0, -R], [2 * R, 0, 0], [0, 0, 2 * R]),
        ([-P, 2.0, P], [2 * P, 0, 0], [0, -2.0, 0]), ([P, 2.0, -P], [-2 * P, 0, 0], [0, -2.0, 0]),
        ([-P, 2.0, -P], [0, 0, 2 * P], [0, -2.0, 0]), ([P, 2.0, P], [0, 0, -2 * P], [0, -2.0, 0])]
    quads = [quad(*corner, *uv(k)) for k, corner in enumerate(surfaces)]
    bw_m, bh_m = spec.size_m
    quads.append(quad([-bw_m / 2, 1.5, P + 0.01], [bw_m, 0, 0], [0, -bh_m, 0], (1 - bw / size, 1 - bh / size),
                      (1.0, 1.0)))
    verts = np.concatenate([q[0] for q in quads])
    uvs = np.concatenate([q[1] for q in quads])
    faces = np.concatenate([[[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]] for k in range(len(quads))])
    return verts, faces, uvs, tex


def layout(kind: str, i: int, n: int, width: int, height: int) -> PinholeNP:
    """Camera ``i`` of ``n``: on the arc before the test room's wall, or on the ring around the pillar."""
    if kind == "ring":
        a = 2 * np.pi * i / n
        eye = [2.0 * np.sin(a), 1.0 + 0.5 * (i % 2), 2.0 * np.cos(a)]
        return PinholeNP.look_at(f"cam{i:03d}", eye, [0.0, 1.0, 0.0], intrinsics(width, height, 60.0), width, height)
    a = np.radians(-35 + 70 * i / max(n - 1, 1))
    eye = [1.8 * np.sin(a) - 0.2, 1.0 + 0.3 * (i % 3), 1.8 * np.cos(a) - 0.2]
    return PinholeNP.look_at(f"cam{i:02d}", eye, [-0.2, 1.0, -1.0], intrinsics(width, height, 50.0), width, height)


def render_rig(folder: Path, n: int, width: int, height: int, kind: str = "arc") -> tuple[list[PinholeNP], BoardSpec]:
    """``n`` photos of the layout's scene into ``folder`` (camNN.png); the true cameras and the board."""
    import cv2

    from capture.camera import Camera
    from neural_render import composite, render_mesh

    spec = BoardSpec(squares_x=5, squares_y=4, square=0.08, marker=0.06)
    verts, faces, uvs, tex = ring_scene(spec) if kind == "ring" else scene(spec)
    cams = []
    for i in range(n):
        cam = layout(kind, i, n, width, height)
        with torch.no_grad():
            rgba = render_mesh(torch.tensor(verts), torch.tensor(faces), Camera.stack([cam.to_camera(torch.float32)]),
                               uvs=torch.tensor(uvs), texture=torch.tensor(tex), texture_srgb=True, supersample=1)
        im = composite(rgba, (0.3, 0.3, 0.3)).numpy()[0]
        cv2.imwrite(str(folder / f"{cam.name}.png"), cv2.cvtColor((im * 255 + 0.5).astype(np.uint8),
                                                                   cv2.COLOR_RGB2BGR))
        cams.append(cam)
    return cams, spec


def run(folder: Path, work: Path, spec: BoardSpec, truth: list[PinholeNP], threads: int | None,
        matching: str = "auto", neighbours: int = 30, mapper_threads: int = 1) -> np.ndarray:
    """One SfM run, its line printed; returns the estimated centres (N, 3) in the run's own frame. threads: the
    features' and matching's (None: every core), mapper_threads: the mapper's."""
    t = time.perf_counter()
    res = run_sfm(folder, work, board=spec, single_camera=True, num_threads=threads, mapper_threads=mapper_threads,
                  matching=matching, neighbours=neighbours)
    total = time.perf_counter() - t
    est = {c.name: as_np(c) for c in res.cameras}
    names = [c.name for c in truth if c.name in est]
    src = np.array([est[n].center for n in names])
    dst = np.array([c.center for c in truth if c.name in est])
    s, R, t_ = umeyama(src, dst)
    err = np.linalg.norm(s * src @ R.T + t_ - dst, axis=1) * 1000
    steps = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in res.seconds.items())
    how = res.matching["mode"] + (f" {res.matching['neighbours']}" if "neighbours" in res.matching else "")
    used = res.threads
    print(f"features and matching on {used['features_matching']} thread(s), mapping on {used['mapping']}, {how}: "
          f"{total:.1f} s ({steps}); {res.matching['pairs']} pairs; "
          f"{len(res.registered)}/{len(truth)} registered, "
          f"{res.n_points} points, {res.mean_reprojection_px:.3f} px; centres after a similarity: mean "
          f"{err.mean():.1f} / max {err.max():.1f} mm; board scale off by {abs(s - 1) * 100:.2f} %", flush=True)
    return src


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=24)
    ap.add_argument("--size", default="1280x960")
    ap.add_argument("--layout", choices=("arc", "ring"), default="arc")
    ap.add_argument("--matching", help="comma-separated matchings to compare (exhaustive, retrieval, auto): one run "
                                       "each on --threads")
    ap.add_argument("--threads", type=int, default=0, help="features' and matching's threads (0: every core)")
    ap.add_argument("--mapper-threads", type=int, default=1)
    ap.add_argument("--neighbours", type=int, default=30)
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    print(_contention.machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "photos"
        folder.mkdir()
        t = time.perf_counter()
        truth, spec = render_rig(folder, args.cameras, width, height, args.layout)
        print(f"{args.cameras} photos of {width}x{height} ({args.layout}) rendered in {time.perf_counter() - t:.1f} s",
              flush=True)
        if args.matching:
            for k, mode in enumerate(args.matching.split(",")):
                run(folder, Path(d) / f"w{k}", spec, truth, args.threads or None, mode, args.neighbours,
                    args.mapper_threads)
        else:       # one thread everywhere (before stop 72's default), every core for the features and matching
            one = run(folder, Path(d) / "w1", spec, truth, 1)
            every = [run(folder, Path(d) / f"w_all{k}", spec, truth, None) for k in range(2)]
            for k, centres in enumerate(every):
                print(f"every-core run {k + 1}: centres differ from the one-thread run's by "
                      f"{np.abs(centres - one).max():.3g} (COLMAP's units)")
            run(folder, Path(d) / "w_map2", spec, truth, None, mapper_threads=2)
    print(f"load average {_contention.load_average()}")


if __name__ == "__main__":
    main()
