"""Issue 21's boundary cases of `doppel fit` and FitConfig: one red line naming the option, exit 1."""

from __future__ import annotations

import math

import pytest

from doppel.cli import main
from reconstruction.fitting import FitConfig, resolve_device


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--silhouette-weight", "nan"), ("--silhouette-weight", "inf"),
                                           ("--temporal-weight", "nan"), ("--silhouette-weight", "-1")])
def test_fit_rejects_non_finite_weights_naming_the_option(tmp_path, capsys, option, value):
    (tmp_path / "s").mkdir()
    code, err = _run(capsys, "fit", str(tmp_path / "s"), "--landmarks", str(tmp_path / "s"), "--out",
                     str(tmp_path / "o"), option, value)
    assert code == 1 and f"{option} must be a finite number >= 0" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_fit_device_cuda_without_cuda(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _run(capsys, "fit", "--scan", str(tmp_path / "x.ply"), "--out", str(tmp_path / "o"),
                     "--device", "cuda")
    assert code == 1 and "--device cuda: no CUDA device is available" in err
    with pytest.raises(ValueError, match="--device must be auto, cpu or cuda"):
        resolve_device("gpu")
    assert resolve_device("auto") == "cpu"


def test_fit_session_and_scan_together_is_refused(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    code, err = _run(capsys, "fit", str(tmp_path / "s"), "--scan", str(tmp_path / "x.ply"), "--out",
                     str(tmp_path / "o"))
    assert code == 1 and "not both" in err and "SESSION_DIR" in err


@pytest.mark.parametrize("kwargs, message", [
    ({"w_silhouette": math.nan}, "FitConfig.w_silhouette must be a finite number"),
    ({"w_landmarks": math.inf}, "FitConfig.w_landmarks must be a finite number"),
    ({"iters_body": -1}, "FitConfig.iters_body must be a non-negative integer"),
    ({"iters_face": 2.5}, "FitConfig.iters_face must be a non-negative integer"),
    ({"lr": 0.0}, "FitConfig.lr must be > 0"),
    ({"w_shape_prior": -1e-3}, "FitConfig.w_shape_prior must be >= 0"),
    ({"correspondences": "dense"}, "FitConfig.correspondences must be auto, calibrated or joints"),
    ({"set_weights": {"pose": math.nan}}, "FitConfig.set_weights must be finite"),
])
def test_fit_config_validates_itself(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(**kwargs)


def test_fit_config_defaults_and_named_step_factors():
    cfg = FitConfig()
    assert cfg.lr_rigid_factor == 0.1 and cfg.lr_all_factor == 0.3 and cfg.temporal_translation_var_m2 == 0.01
    FitConfig(iters_rigid=0, iters_body=0, iters_face=0, iters_all=0, w_silhouette=0.0)   # zeros are fine
