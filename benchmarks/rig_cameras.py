"""A capture rig's cameras written for DCC tools (`doppel capture cameras CALIB --out rig.abc|usda`) and read back
the way those tools would: the Alembic and USD files by Blender's importers (Blender's own camera matrices), the USD
file by usd-core (each camera's frustum). A mesh (the fit of the session, say) is projected through every camera of
each file and compared with `capture.Camera.project` (undistorted: a DCC camera has no distortion); with --photos,
overlays of the mesh through the Alembic cameras on the session's photos are written for people to look at.

    PYTHONPATH=. python benchmarks/rig_cameras.py CALIBRATION --mesh fit_mesh.ply [--photos SESSION/images]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def blender_pixels(path: Path, cams, points: np.ndarray) -> dict[str, np.ndarray]:
    from assets.blender_worker import run_blender_tasks

    zup = np.c_[points[:, 0], -points[:, 2], points[:, 1], np.ones(len(points))]     # Doppel -> Blender axes
    results = run_blender_tasks([({"kind": "read_cameras", "path": str(path), "size": [c.width, c.height]}, {})
                                 for c in cams])
    out = {}
    for c, res in zip(cams, results, strict=True):
        h = zup @ res.arrays["projection"][res.info["cameras"].index(c.name)].T
        ndc = h[:, :2] / h[:, 3:4]
        out[c.name] = np.stack([(ndc[:, 0] + 1) / 2 * c.width, (1 - ndc[:, 1]) / 2 * c.height], 1)
    return out


def usd_pixels(path: Path, cams, points: np.ndarray) -> dict[str, np.ndarray]:
    from pxr import Gf, Usd, UsdGeom

    from assets.export.camera_scene import usd_name

    stage = Usd.Stage.Open(str(path))
    out = {}
    for c in cams:
        g = UsdGeom.Camera(stage.GetPrimAtPath(f"/scene/{usd_name(c.name)}")).GetCamera(Usd.TimeCode.Default())
        vp = g.frustum.ComputeViewMatrix() * g.frustum.ComputeProjectionMatrix()
        ndc = np.array([vp.Transform(Gf.Vec3d(*p)) for p in points])[:, :2]
        out[c.name] = np.stack([(ndc[:, 0] + 1) / 2 * c.width, (1 - ndc[:, 1]) / 2 * c.height], 1)
    return out


def overlay(photos: Path, cam, px: np.ndarray, out: Path) -> Path | None:
    import cv2

    found = sorted((photos / cam.name).glob("*")) if (photos / cam.name).is_dir() else sorted(
        photos.glob(f"{cam.name}*"))
    img = cv2.imread(str(found[0])) if found else None
    if img is None:
        return None
    for u, v in np.round((px[::7] - 0.5) * 16).astype(np.int64):
        cv2.circle(img, (int(u), int(v)), 16, (80, 255, 80), -1, cv2.LINE_AA, shift=4)
    path = out / f"overlay_{cam.name}.png"
    cv2.imwrite(str(path), img)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("calibration", type=Path)
    ap.add_argument("--mesh", type=Path, required=True)
    ap.add_argument("--photos", type=Path)
    ap.add_argument("--out", type=Path, default=Path("/tmp/doppel_rig_cameras"))
    args = ap.parse_args()
    from assets.export.rig_cameras import export_rig_cameras  # a Doppel package before torch (its tuning)
    from capture.calibration_io import read_calibration

    torch = __import__("torch")
    trimesh = __import__("trimesh")

    args.out.mkdir(parents=True, exist_ok=True)
    cams = read_calibration(args.calibration)
    points = np.asarray(trimesh.load(args.mesh, process=False).vertices, np.float64)
    want = {c.name: dataclasses.replace(c, dist=None).project(torch.from_numpy(points).to(c.K.dtype))[0].numpy()
            for c in cams}
    print(f"{args.calibration}: {len(cams)} cameras; {args.mesh}: {len(points)} vertices")
    for suffix, readers in ((".abc", ("blender",)), (".usda", ("blender", "usd-core"))):
        t0 = time.perf_counter()
        path = args.out / f"rig{suffix}"
        notes = export_rig_cameras(cams, path, provenance={"calibration": str(args.calibration)})
        dt = time.perf_counter() - t0
        for reader in readers:
            got = blender_pixels(path, cams, points) if reader == "blender" else usd_pixels(path, cams, points)
            err = np.concatenate([np.linalg.norm(got[c.name] - want[c.name], axis=1) for c in cams])
            print(f"{path.name} ({path.stat().st_size / 1e3:.1f} kB, {dt:.1f} s) read by {reader}: the mesh "
                  f"{err.max():.5f} px max, {err.mean():.6f} mean from capture.Camera's projection")
            if suffix == ".abc":
                abc = got
    for note in notes:
        print(f"note: {note}")
    if args.photos is not None:
        shots = [overlay(args.photos, c, abc[c.name], args.out) for c in cams[:4]]
        print("overlays:", ", ".join(str(p) for p in shots if p))


if __name__ == "__main__":
    main()
