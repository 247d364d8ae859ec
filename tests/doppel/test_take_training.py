"""The texture and the neural double from a take's fits: a fit of one frame of a take (`doppel fit --frame 002`) is
that frame's (the texture bakes its photos, the training trains on them: the mesh was taken for the session's first
frame's), and a take's frame that fewer than two views saw (fitted from the motion before it) is left out of the
training, said."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from doppel.cli import main


def _run(*args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


def test_a_fit_of_a_later_frame_is_that_frames(take, tmp_path, caplog):
    from doppel.neural_inputs import fitted_frame, load_fit_mesh

    sc, ing = take
    fit = tmp_path / "fit"
    assert _run("fit", sc.session_dir, "--landmarks", ing, "--out", fit, "--frame", "002", "--stages",
                "10,30,0,10", "--detail-iterations", "0") == 0
    frames = ["000", "001", "002"]
    assert fitted_frame(fit, frames) == "002" and fitted_frame(fit, ["0"]) == "0"
    assert list(load_fit_mesh(fit, frames).frames) == ["002"]
    assert _run("texture", sc.session_dir, "--fit", fit, "--out", tmp_path / "tex", "--size", "1024") == 0
    assert json.loads((tmp_path / "tex" / "metrics.json").read_text())["frame"] == "002"
    assert _run("render", "train", sc.session_dir, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                "--iterations", "1", "--device", "cpu") == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["summary"]["frames_trained"] == ["002"]


def test_a_steered_frame_is_left_out_of_the_training(take, tmp_path, caplog):
    from doppel.render_stage import steered_frames

    sc, ing = take
    hidden = tmp_path / "ingest"
    shutil.copytree(ing, hidden)
    z = dict(np.load(hidden / "landmarks.npz"))
    z["pose_conf"][1] = 0.0                                     # frame 001: no view sees the actor
    np.savez_compressed(hidden / "landmarks.npz", **z)
    fit = tmp_path / "fit"
    assert _run("fit", sc.session_dir, "--landmarks", hidden, "--out", fit, "--frame", "all", "--stages",
                "10,30,0,10", "--detail-iterations", "0") == 0
    assert steered_frames(fit) == {"001"} and steered_frames(tmp_path) == set()
    with caplog.at_level(logging.WARNING):
        assert _run("render", "train", sc.session_dir, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                    "--iterations", "1", "--device", "cpu") == 0
    assert "frame(s) 001 of the take were seen by fewer than two views" in caplog.text
    summary = json.loads((tmp_path / "m" / "config.json").read_text())["summary"]
    assert summary["frames"] == ["000", "001", "002"] and summary["frames_trained"] == ["000", "002"]
