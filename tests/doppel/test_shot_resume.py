"""`doppel render shot --resume`: a shot stopped part-way goes on from the frames it wrote, and writes the frames,
EXRs and movies of an uninterrupted shot (a CPU shot draws a frame in seconds: a long one was lost whole)."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from neural_render.image_io import read_exr
from tests.cli_runner import run_cli
from tests.doppel.sphere_double import model_rig_and_spin

FRAMES = 6


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _shot(tmp_path, s, out, *more):
    return ("render", "shot", tmp_path / "m", "--cameras", s / "calibration.json", "--camera", "cam0", "--camera",
            "cam2", "--rig", tmp_path / "rig", "--anim", tmp_path / "anim", "--jitter", "2", "--out", out, *more)


def _stop_at_call(monkeypatch, n):
    """`write_shot_frame` interrupted as by Ctrl-C on its n-th call (once); returns the list of its calls."""
    import neural_render.shot as shot
    from doppel.cli import Interrupted

    calls, stopped, write = [], [], shot.write_shot_frame

    def stopping(folder, number, frame, passes=None, attributes=None):
        calls.append((folder.name, number))
        if len(calls) == n and not stopped:
            stopped.append(1)
            raise Interrupted(2)
        return write(folder, number, frame, passes, attributes)

    monkeypatch.setattr(shot, "write_shot_frame", stopping)
    return calls


def _contents(out):
    """Every frame's PNG bytes and EXR pixels, and every movie's decoded frames."""
    pngs = {p.relative_to(out).as_posix(): iio.imread(p) for p in sorted(out.glob("*/*.png"))}
    exrs = {p.relative_to(out).as_posix(): read_exr(p) for p in sorted(out.glob("*/*.exr"))}
    movies = {p.name: np.stack(list(iio.imiter(p)))
              for p in sorted(out.glob("*.mp4"))}
    return pngs, exrs, movies


def test_an_interrupted_shot_resumes_to_the_uninterrupted_shot(tmp_path, capsys, sphere_session, monkeypatch):
    s = model_rig_and_spin(tmp_path, capsys, sphere_session, FRAMES)
    code, _, err = run_cli(capsys, *_shot(tmp_path, s, tmp_path / "whole"))
    assert code == 0, err
    whole = _contents(tmp_path / "whole")
    assert len(whole[0]) == 2 * FRAMES and len(whole[2]) == 2

    out = tmp_path / "shot"
    calls = _stop_at_call(monkeypatch, FRAMES + 3)          # cam0 whole, cam2's first two frames, then Ctrl-C
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out))
    said = " ".join((o + err).split())
    assert code == 130 and not out.exists()
    assert f"its first {FRAMES + 2} frame(s) are kept in" in said and "--resume" in said, said
    ck = tmp_path / ".shot.shot.checkpoint"
    assert json.loads((ck / "shot.json").read_text())["done"] == {"cam0": FRAMES, "cam2": 2}

    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out, "--jitter", "1", "--resume"))
    assert code == 1 and "option jitter differs" in " ".join(err.split()), err
    calls.clear()
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out, "--resume"))
    assert code == 0, err
    assert f"{FRAMES + 2} frame(s) kept from the interrupted shot" in " ".join(o.split())
    assert calls == [("cam2", f) for f in range(2, FRAMES)]          # only the frames not kept were drawn
    assert not ck.exists()
    again = _contents(out)
    for k in (0, 1):                                                  # the PNGs' and EXRs' pixels
        assert again[k].keys() == whole[k].keys() and all(np.array_equal(again[k][f], whole[k][f]) for f in whole[k])
    assert all(np.array_equal(again[2][k], whole[2][k]) for k in whole[2])   # the movies, frame for frame
    manifest = json.loads((out / "manifest.json").read_text())
    assert len([k for k in manifest["outputs"] if k.endswith(".png")]) == 2 * FRAMES
    assert manifest["render"]["kept_frames"] == FRAMES + 2


def test_a_shot_started_again_without_resume_draws_every_frame(tmp_path, capsys, sphere_session, monkeypatch,
                                                               caplog):
    s = model_rig_and_spin(tmp_path, capsys, sphere_session, 3)
    out = tmp_path / "shot"
    calls = _stop_at_call(monkeypatch, 2)
    code, _, _ = run_cli(capsys, *_shot(tmp_path, s, out))
    assert code == 130
    calls.clear()
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out))
    assert code == 0, err
    assert len(calls) == 6 and "kept" not in o
    assert "is discarded: starting over" in caplog.text                 # said, not silent


def test_a_shot_stopped_by_a_full_disk_says_what_it_kept_and_how_to_go_on(tmp_path, capsys, sphere_session,
                                                                          monkeypatch):
    """"free some space and run again" alone led to a run without --resume, which starts over: the line names the
    frames kept and --resume, as an interrupted shot's does."""
    import errno

    import neural_render.shot as shot

    s = model_rig_and_spin(tmp_path, capsys, sphere_session, 3)
    write, calls = shot.write_shot_frame, []

    def full(folder, number, frame, passes=None, attributes=None):
        calls.append(number)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / f"{number:04d}.png"))
        return write(folder, number, frame, passes, attributes)

    monkeypatch.setattr(shot, "write_shot_frame", full)
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, tmp_path / "shot"))
    said = " ".join(err.split())
    assert code == 1 and "disk full" in said and "its first 2 frame(s) are kept in" in said and "--resume" in said, said
    assert f"writing {tmp_path / 'shot' / 'cam0' / '0002.png'}" in said, said    # the file as it will be named


def test_a_real_actors_interrupted_shot_is_signed_resumable_and_purged_with_the_consent(tmp_path, capsys,
                                                                                       sphere_session, monkeypatch):
    """In a workspace the kept frames are the consent's (owners.json): a resume under the same consent goes on from
    them, every frame signed; a revocation names the checkpoint of an interrupted shot and the purge deletes it."""
    from assets.consent_purge import execute_purge, plan_purge
    from assets.workspace import Workspace
    from core.leftovers import owners_of
    from tests.doppel.sphere_double import jane_model

    ws, who = jane_model(tmp_path, capsys, sphere_session)
    shot = ("render", "shot", ws / "m", "--cameras", ws / "session" / "calibration.json", "--camera", "cam0",
            "--camera", "cam1", "--camera", "cam2", "--jitter", "1", *who)
    calls = _stop_at_call(monkeypatch, 2)
    code, _, _ = run_cli(capsys, *shot, "--out", ws / "a")
    assert code == 130
    consent = [o["consent"] for o in owners_of(ws / ".a.shot.checkpoint")]
    assert len(consent) == 1 and consent[0], consent
    calls.clear()
    code, _, err = run_cli(capsys, *shot, "--out", ws / "a", "--resume")
    assert code == 0, err
    assert [c for c, _ in calls] == ["cam1", "cam2"]
    for cam in ("cam0", "cam1", "cam2"):           # the kept frame and the new ones: each signed, verifiable
        code, out, err = run_cli(capsys, "verify", ws / "a" / cam / "0000.png", "-W", ws)
        assert code == 0 and "actor jane" in out, out + err

    _stop_at_call(monkeypatch, 2)
    code, _, _ = run_cli(capsys, *shot, "--out", ws / "b")
    assert code == 130 and (ws / ".b.shot.checkpoint" / "b" / "cam0" / "0000.png").is_file()
    code, out, err = run_cli(capsys, "consent", "revoke", consent[0], "--reason", "withdrawn", "-W", ws)
    assert code == 0 and ".b.shot.checkpoint" in " ".join((out + err).split()), out + err
    w = Workspace.open(ws)
    plan = plan_purge(w, consent[0])
    assert ws / ".b.shot.checkpoint" in [i.path for i in plan.to_delete]
    execute_purge(w, plan)
    assert not (ws / ".b.shot.checkpoint").exists() and not (ws / "a").exists()


def test_a_resume_that_fails_before_drawing_keeps_the_checkpoint(tmp_path, capsys, sphere_session, monkeypatch):
    """A --resume stopped by an error before it took the kept frames (the model failing to load) removed the
    checkpoint: its frames were lost to an unrelated failure."""
    import neural_render.ensemble as ensemble

    s = model_rig_and_spin(tmp_path, capsys, sphere_session, 3)
    out = tmp_path / "shot"
    _stop_at_call(monkeypatch, 3)
    code, _, _ = run_cli(capsys, *_shot(tmp_path, s, out))
    assert code == 130
    load = ensemble.load_double

    def failing(*a, **k):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(ensemble, "load_double", failing)
    code, _, err = run_cli(capsys, *_shot(tmp_path, s, out, "--resume"))
    assert code == 2 and "its first 2 frame(s) are kept in" in " ".join(err.split()), err
    monkeypatch.setattr(ensemble, "load_double", load)
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out, "--resume"))
    assert code == 0 and "2 frame(s) kept from the interrupted shot" in " ".join(o.split()), o + err


def test_a_shot_drawn_several_views_a_call_resumes_at_a_chunks_start(tmp_path, capsys, sphere_session, monkeypatch):
    """Frames drawn 4 a model call are resumed from the start of their chunk (frame 4, not 6), so that every
    chunk is drawn as the uninterrupted shot drew it; the frames are the uninterrupted shot's."""
    s = model_rig_and_spin(tmp_path, capsys, sphere_session, 10)
    more = ("--views-per-call", "4", "--jitter", "1")
    code, _, err = run_cli(capsys, *_shot(tmp_path, s, tmp_path / "whole", *more))
    assert code == 0, err
    calls = _stop_at_call(monkeypatch, 7)                  # cam0's frames 0-5 written, then Ctrl-C at the 7th
    out = tmp_path / "shot"
    code, _, _ = run_cli(capsys, *_shot(tmp_path, s, out, *more))
    assert code == 130
    calls.clear()
    code, _, err = run_cli(capsys, *_shot(tmp_path, s, out, *more, "--resume"))
    assert code == 0, err
    assert calls[:1] == [("cam0", 4)] and len(calls) == 16        # cam0 from frame 4 (its chunk), cam2 whole
    whole, again = _contents(tmp_path / "whole"), _contents(out)
    for k in range(3):
        assert all(np.array_equal(again[k][f], whole[k][f]) for f in whole[k])


def test_a_motion_blurred_shot_resumes_to_the_uninterrupted_shot(tmp_path, capsys, sphere_session, monkeypatch):
    """With --shutter the resumed frames are drawn at the shutter times of their own frame numbers (not of the
    shot's first frames): the same pixels as the uninterrupted shot, which differ from the sharp shot's."""
    s = model_rig_and_spin(tmp_path, capsys, sphere_session, FRAMES)
    blur = ("--shutter", "180", "--shutter-samples", "2")
    for name, more in (("whole", blur), ("sharp", ())):
        code, _, err = run_cli(capsys, *_shot(tmp_path, s, tmp_path / name, *more))
        assert code == 0, err
    whole, sharp = _contents(tmp_path / "whole"), _contents(tmp_path / "sharp")
    assert not np.array_equal(whole[1]["cam2/0004.exr"], sharp[1]["cam2/0004.exr"])
    out = tmp_path / "shot"
    calls = _stop_at_call(monkeypatch, FRAMES + 3)
    code, _, _ = run_cli(capsys, *_shot(tmp_path, s, out, *blur))
    assert code == 130
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out, "--resume"))
    assert code == 1 and "option motion_blur differs" in " ".join(err.split()), err
    calls.clear()
    code, o, err = run_cli(capsys, *_shot(tmp_path, s, out, *blur, "--resume"))
    assert code == 0, err
    assert calls == [("cam2", f) for f in range(2, FRAMES)]
    again = _contents(out)
    assert all(np.array_equal(again[1][f], whole[1][f]) for f in whole[1])
