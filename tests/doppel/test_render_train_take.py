"""`doppel render train` on a take: a frame that fewer than two views saw (fitted from the motion before it) is
left out of the training, said; the others train."""

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
