"""Careless inputs to `doppel export` (issue 21): a texture that is not an image, an unknown preset with .glb, a
0-byte or single-array .npz as --anim. Each is one line naming the file or option, exit 1, and no file written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.assets.conftest import make_rig
from tests.assets.test_export_cli import run_cli


@pytest.fixture(scope="module")
def anon_rig_dir(tmp_path_factory):
    """The tiny rig with no actor in its metadata (so export runs outside a workspace)."""
    rig = make_rig()
    rig.metadata = {"model": "synthetic"}
    d = tmp_path_factory.mktemp("rig")
    rig.validate().save(d)
    return d


def _bad_inputs(d):
    (d / "random.png").write_bytes(np.random.default_rng(0).bytes(3000))
    (d / "empty.npz").write_bytes(b"")
    np.save(d / "one.npy", np.zeros(3))
    (d / "one.npz").write_bytes((d / "one.npy").read_bytes())
    (d / "garbage.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    (d / "walk.bvh").write_text("HIERARCHY\nROOT hips\n{\n}\n")
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "albedo.bmp")


@pytest.mark.parametrize("args, match", [
    (["--texture", "{d}/random.png"], r"random\.png: not a readable PNG or JPEG image"),
    (["--texture", "{d}/albedo.bmp"], r"albedo\.bmp: textures must be PNG or JPEG images, this is BMP"),
    (["--preset", "nuke"], "--preset must be one of maya, unreal, blender, got 'nuke'"),
    (["--anim", "{d}/empty.npz"], r"empty\.npz: empty file \(0 bytes\), not an animation \.npz"),
    (["--anim", "{d}/one.npz"], r"one\.npz: a single \.npy array, not an animation \.npz"),
    (["--anim", "{d}/garbage.npz"], r"garbage\.npz: unreadable animation \.npz"),
    (["--anim", "{d}/walk.bvh"], r"walk\.bvh: not an animation \.npz .* retargeted onto the rig first: doppel "
                                 r"retarget CLIP --rig RIG --out ANIM"),
])
def test_bad_export_input_is_one_line(args, match, anon_rig_dir, tmp_path, capsys):
    import re

    _bad_inputs(tmp_path)
    out = tmp_path / "double.glb"
    code, _, err = run_cli(capsys, "export", str(anon_rig_dir), "--out", str(out),
                           *[a.format(d=tmp_path) for a in args])
    assert code == 1, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and re.search(match, errors[0]), err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".double")]


def test_a_known_preset_with_glb_warns(anon_rig_dir, tmp_path, capsys, caplog):
    code, out, err = run_cli(capsys, "export", str(anon_rig_dir), "--out", str(tmp_path / "d.glb"), "--preset",
                             "unreal", "--no-texture")
    assert code == 0, err
    assert "--preset unreal (z-up, cm) does not apply to glTF" in caplog.text + err
