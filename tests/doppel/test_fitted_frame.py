"""A fit of one frame of a take (`doppel fit --frame 002`) is that frame's: the texture bakes that frame's photos
and the neural double trains on them (the mesh was taken for the session's first frame's)."""

from __future__ import annotations

import json

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
