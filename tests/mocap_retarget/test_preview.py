"""Preview drawing: skeleton panels, the rasterized mesh, PNG and mp4 writing."""

from __future__ import annotations

import numpy as np

from capture.video_header import read_stream_header
from mocap_retarget.preview import render_frames, write_mp4, write_png


def test_render_with_mesh_and_write(tmp_path):
    F = 3
    src = np.zeros((F, 3, 3))
    src[:, 1, 1], src[:, 2, 1] = 0.8, 1.6                       # a vertical 3-joint chain
    tgt = src * 1.1
    # a small closed mesh (octahedron) around the target's middle joint
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float) * 0.3
    v[:, 1] += 0.9
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    verts = np.repeat(v[None], F, 0)
    imgs = render_frames(src, np.array([-1, 0, 1]), tgt, np.array([-1, 0, 1]), np.arange(F), size=64,
                         vertices=verts, faces=faces, source_floor_y=0.0)
    assert len(imgs) == F and imgs[0].shape == (64, 128, 3) and imgs[0].dtype == np.uint8
    right = imgs[0][:, 64:]
    skin = (np.abs(right.astype(int) - [225, 190, 170]).sum(-1) < 120) & (right.sum(-1) < 700)
    assert skin.sum() > 50                                       # the mesh was drawn on the double's panel
    left = imgs[0][:, :64]
    assert ((left[..., 2] > 150) & (left[..., 0] < 100)).sum() > 20   # the blue source skeleton
    write_png(tmp_path / "p.png", imgs, columns=2)
    write_mp4(tmp_path / "p.mp4", imgs, fps=10)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "p.mp4").stat().st_size > 0
    assert read_stream_header(tmp_path / "p.mp4").colour["colorspace"] == "bt709"   # sRGB frames: tagged BT.709
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.mp4", "p.png"]   # no temporary files left


def test_mesh_is_drawn_solid_without_holes():
    """The double is rasterized, not splatted: its silhouette has no background pixels inside (the 2x2 point
    splats left a stipple of holes; on this 6-vertex mesh they drew 14 dots)."""
    from scipy.ndimage import binary_fill_holes

    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float) * 0.5
    v[:, 1] += 1.0
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    joints = np.zeros((1, 2, 3))
    joints[:, 1, 1] = 1.8
    img = render_frames(joints, np.array([-1, 0]), joints, np.array([-1, 0]), np.arange(1), size=128,
                        vertices=v[None], faces=faces)[0][:, 128:]
    drawn = (np.abs(img.astype(int) - [250, 250, 250]).sum(-1) > 0)
    drawn[:20] = False                                                # the panel's caption
    assert drawn.sum() > 1500                                         # about the octahedron's area
    assert (binary_fill_holes(drawn) & ~drawn).sum() == 0
