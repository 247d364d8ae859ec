"""`doppel fit --scan` end to end on a small synthetic scan, `doppel rig --fit`, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from doppel.cli import main


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    import torch

    from reconstruction.body_models import AnnyModel, BodyParams
    from reconstruction.synthetic import synthetic_scan

    m = AnnyModel()
    shape = torch.tensor([[0.5, 0.6, 0.5, 0.6, 0.7, 0.5]])
    v = m.forward(BodyParams(shape=shape)).vertices[0].double().numpy()
    sv, sf, T = synthetic_scan(v, m.faces, seed=5, voxel_m=0.012)
    folder = tmp_path_factory.mktemp("scan")
    path = folder / "scan.ply"
    scan = trimesh.Trimesh(sv * 1000.0, sf, process=False)    # in millimetres, as Artec and 3dMD write scans
    # Vertex colours (issue 22): red on the top quarter of the body's height (its own frame), blue below.
    y = ((sv - T[:3, 3]) @ T[:3, :3])[:, 1]
    up = y > y.min() + 0.75 * np.ptp(y)
    scan.visual = trimesh.visual.ColorVisuals(scan, vertex_colors=np.where(up[:, None], [[230, 20, 20, 255]],
                                                                           [[20, 20, 230, 255]]).astype(np.uint8))
    scan.export(path)
    # Control points: the top of the head, the front-most point and the two hands at their true places (scan frame
    # and units: millimetres).
    gt = v @ T[:3, :3].T + T[:3, 3]
    ids = [int(np.argmax(v[:, 1])), int(np.argmax(v[:, 2])), int(np.argmax(v[:, 0])), int(np.argmin(v[:, 0]))]
    (folder / "pairs.json").write_text(json.dumps({"schema": 1, "pairs": [
        {"scan_point": (gt[i] * 1000.0).tolist(), "model_vertex": i} for i in ids]}))
    return path


def test_fit_scan_then_rig(scan_file, tmp_path, capsys):
    out = tmp_path / "fit"
    pairs = scan_file.parent / "pairs.json"
    assert _run(["fit", "--scan", str(scan_file), "--out", str(out), "--iterations", "25",
                 "--refine-iterations", "3", "--nonrigid-iterations", "2", "--no-auto-landmarks", "--landmarks",
                 str(pairs), "--texture-size", "128"]) == 0
    assert "read in mm (from its size" in capsys.readouterr().out
    for name in ("params.json", "fit_mesh.ply", "fit_mesh_bind.ply", "model_fit_mesh.ply", "displacements.npz",
                 "metrics.json", "manifest.json", "sliding.npz", "sliding.png", "albedo.png", "report.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    # The registered template lies on the scan (12 mm remesh, 2 mm noise): within a few mm on average.
    assert metrics["registered_to_scan"]["mean_mm"] < 4.0, metrics
    assert metrics["rigid_start"] == "control points" and metrics["scan_landmarks"] is None
    assert metrics["scan_units"] == "mm" and metrics["warnings"] == []
    assert metrics["correspondences"]["control_points"]["registered_mm"] < 5.0, metrics["correspondences"]
    assert metrics["texture_coverage"] > 0.9
    # The albedo in Anny's UVs: the head's texels red, the feet's blue (the UVs of the topmost/lowest vertex).
    from PIL import Image

    from reconstruction.body_models import AnnyModel
    from reconstruction.scan_texture import sample_image

    alb = np.asarray(Image.open(out / "albedo.png").convert("RGB"), np.float64) / 255
    m = AnnyModel()
    bind = trimesh.load(out / "fit_mesh_bind.ply", process=False).vertices
    uvs, fuv = m.uvs
    faces = np.asarray(m.faces)

    def tex_of(vi):
        f = np.nonzero((faces == vi).any(1))[0][0]
        return sample_image(uvs[fuv[f, list(faces[f]).index(vi)]][None], alb)[0]

    top, low = tex_of(int(np.argmax(bind[:, 1]))), tex_of(int(np.argmin(bind[:, 1])))
    assert top[0] > 0.7 and top[2] < 0.3 and low[2] > 0.7 and low[0] < 0.3, (top, low)
    mesh = trimesh.load(out / "fit_mesh.ply", process=False)
    assert len(mesh.vertices) == 13718 and 1.0 < np.ptp(mesh.vertices, axis=0).max() < 2.5     # metres
    params = json.loads((out / "params.json").read_text())
    assert params["model"] == "anny" and abs(params["shape"]["height"] - 0.7) < 0.15
    d = np.load(out / "displacements.npz")
    assert d["offsets"].shape == (13718, 3) and np.isfinite(d["normal_regularised"]).all()
    rig_out = tmp_path / "rig"
    assert _run(["rig", "--fit", str(out), "--out", str(rig_out), "--preview-size", "64"]) == 0
    manifest = json.loads((rig_out / "manifest.json").read_text())
    assert abs(manifest["params"]["shape"]["height"] - params["shape"]["height"]) < 1e-5
    assert (rig_out / "albedo.png").read_bytes() == (out / "albedo.png").read_bytes()    # export finds it there


def test_fit_bad_input(tmp_path, capsys):
    assert _run(["fit", "--out", str(tmp_path / "o")]) == 1
    assert "SESSION_DIR" in capsys.readouterr().err
    bad = tmp_path / "nan.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    assert _run(["fit", "--scan", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "NaN" in capsys.readouterr().err
    pts = tmp_path / "points.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(50, 3))).export(pts)
    assert _run(["fit", "--scan", str(pts), "--out", str(tmp_path / "o")]) == 1
    assert "no faces" in capsys.readouterr().err
    (tmp_path / "s").mkdir()
    assert _run(["fit", str(tmp_path / "s"), "--landmarks", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 1
    assert "calibration.json" in capsys.readouterr().err    # not a session (session fits: test_fit_session.py)
