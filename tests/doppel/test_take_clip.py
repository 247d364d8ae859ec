"""A take's fit as a mocap clip (`doppel retarget FIT_DIR --rig RIG --out ANIM --fps F`): the actor's own
performance, captured by the rig's cameras, onto their double's rig; the rig posed by it is the fitted take."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from doppel.cli import main


def _run(*args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


@pytest.fixture(scope="module")
def take_fit(take, tmp_path_factory):
    sc, ing = take
    root = tmp_path_factory.mktemp("take_clip")
    assert _run("fit", sc.session_dir, "--landmarks", ing, "--out", root / "fit", "--frame", "all", "--stages",
                "20,60,0,20", "--detail-iterations", "0") == 0
    assert _run("rig", "--fit", root / "fit", "--out", root / "rig") == 0
    return root


def test_a_take_retargeted_onto_its_actors_rig_is_the_fitted_take(take_fit, capsys):
    from rigging.animation import Animation, in_rig_order
    from rigging.rig import Rig

    fit, anim_dir = take_fit / "fit", take_fit / "anim"
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", anim_dir, "--fps", "30", "--no-cleanup") == 0
    assert "retargeted 3 frames" in capsys.readouterr().out
    anim, rig = Animation.load(anim_dir), Rig.load(take_fit / "rig")
    assert anim.fps == 30.0 and anim.local_rotations.shape[0] == 3
    R, T, _ = in_rig_order(anim, rig)
    frames = json.loads((fit / "metrics.json").read_text())["frames"]
    errors = []
    for t, row in enumerate(frames.values()):
        posed = rig.pose(R[t], T[t]).double().numpy().reshape(-1, 3)
        fitted = trimesh.load(fit / row["folder"] / "fit_mesh.ply", process=False).vertices
        errors.append(np.linalg.norm(posed - fitted, axis=1).mean())
    # measured 1.9-3.9 mm on an 8-frame take (benchmarks/take_pipeline.py; the retargeter moves 51 of 104 joints)
    assert max(errors) < 0.006, errors
    manifest = json.loads((anim_dir / "manifest.json").read_text())
    assert manifest["inputs"]["clip"]["path"].endswith("fit/manifest.json")


def test_a_takes_frame_rate_and_units(take_fit, capsys, caplog):
    fit = take_fit / "fit"
    assert _run("retarget", fit, "--explain") == 0
    assert "upperleg01.L" in capsys.readouterr().out
    assert "24 fps assumed (--fps gives the take's)" in caplog.text
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", take_fit / "a2", "--units", "cm") == 1
    assert "--units applies to BVH clips" in capsys.readouterr().err
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", take_fit / "a3", "--fps", "0") == 1
    assert "--fps must be a frame rate > 0" in capsys.readouterr().err
    assert not (take_fit / "a2").exists() and not (take_fit / "a3").exists()
    one = take_fit / "fit" / "frames" / "001"                     # a frame's folder: the fit of one frame
    assert _run("retarget", one, "--rig", take_fit / "rig", "--out", take_fit / "a4") == 1
    assert "the fit of one frame is a pose, not a clip" in capsys.readouterr().err
