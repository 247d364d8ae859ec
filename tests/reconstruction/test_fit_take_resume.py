"""`doppel fit SESSION --frame all --resume`: a take's fit interrupted part-way goes on from the frames it fitted
(its checkpoint `.OUT.fit.checkpoint`), and the fit folder it publishes is the uninterrupted run's, file for file."""

from __future__ import annotations

import errno
import json

import pytest

from core.storage import sha256_file
from doppel.cli import main

STAGES = ["--stages", "10,30,0,10", "--detail-iterations", "0"]
FILES = ("params.json", "fit_mesh.ply", "fit_mesh_bind.ply")


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def _fit(take, out, *extra):
    sc, ing = take
    return _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(out), "--frame", "all",
                 *STAGES, *extra])


def _stop_at(monkeypatch, frame: str, fitted: list[str]) -> None:
    """Make the fit of ``frame`` fail (a full disk part-way through the take); ``fitted`` collects the frames
    fitted."""
    import reconstruction.session_fit as sf

    real = sf._fit_frame

    def fit_frame(model, session, ingest, spec, cfg, name, *args, **kwargs):
        if name == frame:
            raise OSError(errno.ENOSPC, "No space left on device", "/mnt/show/fit/frames/002/params.json")
        fitted.append(name)
        return real(model, session, ingest, spec, cfg, name, *args, **kwargs)

    monkeypatch.setattr(sf, "_fit_frame", fit_frame)


def _frame_files(out):
    return {f"{d}/{n}": (out / d / n).read_bytes() for d in (".", "frames/001", "frames/002") for n in FILES}


@pytest.fixture(scope="module")
def whole(take, tmp_path_factory):
    """The take fitted without interruption."""
    out = tmp_path_factory.mktemp("whole") / "fit"
    assert _fit(take, out) == 0
    return out


def test_an_interrupted_take_goes_on_from_its_fitted_frames(take, whole, tmp_path, monkeypatch, capsys):
    out = tmp_path / "fit"
    fitted: list[str] = []
    with monkeypatch.context() as m:
        _stop_at(m, "002", fitted)
        assert _fit(take, out) == 1
    err = capsys.readouterr().err
    ck = tmp_path / ".fit.fit.checkpoint"
    assert fitted == ["000", "001"] and not out.exists()
    assert "disk full" in err and "first 2 frame(s) are fitted and kept" in err and "--resume" in err, err
    assert list(json.loads((ck / "take.json").read_text())["done"]) == ["000", "001"]
    assert (ck / "fit" / "report.html").is_file()                  # the first frame's report, written with it

    # another option: refused, naming it; the checkpoint kept
    assert _fit(take, out, "--temporal-weight", "0.5", "--resume") == 1
    assert "option temporal_weight differs" in capsys.readouterr().err
    assert (ck / "take.json").is_file()

    fitted.clear()
    with monkeypatch.context() as m:
        _stop_at(m, "none", fitted)
        assert _fit(take, out, "--resume") == 0
    assert fitted == ["002"]                                       # the kept frames are not fitted again
    assert "1 more" not in capsys.readouterr().out
    assert not ck.exists()
    assert _frame_files(out) == _frame_files(whole)               # the uninterrupted run's fit, byte for byte
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, out))
    assert list(a["frames"]) == list(b["frames"]) == ["000", "001", "002"]
    assert [r["reprojection_px"] for r in a["frames"].values()] == \
        [r["reprojection_px"] for r in b["frames"].values()]
    assert (out / "report.html").is_file() and (out / "frames" / "002" / "overlays.png").is_file()
    for folder in (whole, out):    # a later frame: one copy of the take's bind mesh, the overlays' contact sheet
        for frame in ("001", "002"):
            later = folder / "frames" / frame
            assert (later / "fit_mesh_bind.ply").samefile(folder / "fit_mesh_bind.ply")
            assert not (later / "overlays").exists() and (folder / "overlays").is_dir()
    for folder in (whole, out):          # the manifest hashes metrics.json as it is (with the take's frames)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["outputs"]["metrics"]["sha256"] == sha256_file(folder / "metrics.json")


def test_a_kept_frame_damaged_since_is_fitted_again(take, whole, tmp_path, monkeypatch, capsys, caplog):
    """A kept frame whose params.json was damaged after the kill (a disk error, a hand edit): the resume fits it
    again and goes on (before: every --resume failed on that file, and only starting over helped)."""
    out = tmp_path / "fit"
    fitted: list[str] = []
    with monkeypatch.context() as m:
        _stop_at(m, "002", fitted)
        assert _fit(take, out) == 1
    params = tmp_path / ".fit.fit.checkpoint" / "fit" / "frames" / "001" / "params.json"
    params.write_text(params.read_text()[:100])                   # cut short
    fitted.clear()
    with monkeypatch.context() as m:
        _stop_at(m, "none", fitted)
        assert _fit(take, out, "--resume") == 0, capsys.readouterr().err
    assert fitted == ["001", "002"]
    assert "frame '001' is fitted again" in caplog.text and "params.json: not valid JSON" in caplog.text
    assert _frame_files(out) == _frame_files(whole)


def test_resume_needs_a_take(take, tmp_path, capsys):
    sc, ing = take
    assert _run(["fit", str(sc.session_dir), "--landmarks", str(ing), "--out", str(tmp_path / "f"), *STAGES,
                 "--resume"]) == 1
    assert "--resume goes on with the fit of a whole take: it needs a SESSION and --frame all" in \
        capsys.readouterr().err
    assert not (tmp_path / "f").exists()
    assert _run(["fit", "--scan", str(tmp_path / "scan.ply"), "--out", str(tmp_path / "g"), "--resume"]) == 1
    assert "it needs a SESSION and --frame all" in capsys.readouterr().err
