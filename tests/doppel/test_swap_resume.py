"""`doppel swap --resume`: a swap stopped part-way (killed, interrupted, an error) goes on from its checkpoint and
writes what an uninterrupted swap writes, without tracking the plate again; a plate of frames goes on from the
frames it wrote. Before, a killed 4K swap started again from its first frame (480 frames: 21 minutes)."""

import json

import cv2
import numpy as np
import pytest

from tests.cli_runner import run_cli


def _frames_plate(folder, n=10, size=224):
    """A folder of n PNG frames: the astronaut moved and lit a little differently on each (the colour match moves)."""
    import skimage.data

    from doppel.face_swap.stills import plate_from_still

    folder.mkdir()
    still = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    for i, f in enumerate(plate_from_still(still, n, seed=1, strength=0.25)):
        lit = np.clip(f.astype(np.float32) * (0.85 + 0.03 * i), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"sh010.{i + 1001:04d}.png"), cv2.cvtColor(lit, cv2.COLOR_RGB2BGR))
    return folder


def _read(folder):
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir())}


def _stop_at(monkeypatch, frame):
    """Make the comp fail at ``frame`` (an error, or Ctrl-C, there)."""
    from doppel.face_swap import pipeline

    finish = pipeline.finish_frame

    def stopped(c, f, *a, **k):
        if f == frame:
            raise RuntimeError(f"stopped at frame {frame}")
        return finish(c, f, *a, **k)

    monkeypatch.setattr(pipeline, "finish_frame", stopped)


def test_a_frame_plate_swap_stopped_part_way_resumes_to_the_same_frames(tmp_path, double, monkeypatch):
    from doppel.face_swap import pipeline
    from doppel.face_swap.checkpoint import checkpoint_folder, resume_hint
    from doppel.face_swap.swap import SwapConfig

    plate = _frames_plate(tmp_path / "plate")
    cfg = SwapConfig(matte=True, workers=2)
    ref = pipeline.swap_plate(plate, double, tmp_path / "ref", cfg)

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _stop_at(m, 6)
        with pytest.raises(RuntimeError, match="stopped at frame 6"):
            pipeline.swap_plate(plate, double, out, cfg)
    ck = checkpoint_folder(out)
    kept = json.loads((ck / "comp.json").read_text())     # stopped: every frame written whole is kept
    assert not out.exists() and (ck / "tracking.npz").is_file() and kept["next"] == 6, kept
    assert len(list((ck / "out").iterdir())) == 6
    assert "its tracking and its first 6 frame(s) are kept in" in resume_hint(out)

    drawn = []
    prepare = pipeline.prepare_frame
    monkeypatch.setattr(pipeline, "track_shot", lambda *a, **k: pytest.fail("the plate was tracked again"))
    monkeypatch.setattr(pipeline, "prepare_frame", lambda c, f, *a: drawn.append(f) or prepare(c, f, *a))
    res = pipeline.swap_plate(plate, double, out, cfg, resume=True)

    assert sorted(drawn) == list(range(kept["next"], 10))            # only the frames not kept were composited
    mine, theirs = _read(out), _read(tmp_path / "ref")
    assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    assert [(q.frame, q.swapped, q.coverage, q.flags) for q in res.frames] == \
        [(q.frame, q.swapped, q.coverage, q.flags) for q in ref.frames]
    side, ref_side = pipeline.side_folder(out), pipeline.side_folder(tmp_path / "ref")
    for sub in ("matte", "strips"):
        assert sorted(p.name for p in (side / sub).iterdir()) == sorted(p.name for p in (ref_side / sub).iterdir())
    with np.load(side / "tracks.npz") as a, np.load(ref_side / "tracks.npz") as b:
        assert np.array_equal(a["rotation"], b["rotation"]) and np.array_equal(a["landmarks"], b["landmarks"],
                                                                                  equal_nan=True)
    assert json.loads((side / "manifest.json").read_text())["swap"]["resumed"] is True
    assert not ck.exists()                                              # a finished swap keeps no checkpoint


def test_a_resume_with_other_options_is_refused_and_a_swap_without_it_starts_over(tmp_path, double, monkeypatch):
    from doppel.face_swap import pipeline
    from doppel.face_swap.checkpoint import checkpoint_folder
    from doppel.face_swap.swap import SwapConfig

    plate = _frames_plate(tmp_path / "plate", n=6)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _stop_at(m, 3)
        with pytest.raises(RuntimeError):
            pipeline.swap_plate(plate, double, out, SwapConfig(debias=False))
    with pytest.raises(ValueError, match=r"--resume: the checkpoint .* other inputs or options \(option blend "
                                         r"differs\)"):
        pipeline.swap_plate(plate, double, out, SwapConfig(debias=False, blend="feather"), resume=True)
    assert (checkpoint_folder(out) / "tracking.npz").is_file()          # refused: the checkpoint is still there

    tracked = []
    track = pipeline.track_shot
    monkeypatch.setattr(pipeline, "track_shot", lambda *a, **k: tracked.append(1) or track(*a, **k))
    with monkeypatch.context() as m:                 # "auto" (a batch task retried): the same key goes on ...
        _stop_at(m, 4)
        with pytest.raises(RuntimeError):
            pipeline.swap_plate(plate, double, out, SwapConfig(debias=False), resume="auto")
    assert tracked == []
    with monkeypatch.context() as m:                 # ... another starts over instead of refusing
        _stop_at(m, 4)
        with pytest.raises(RuntimeError):
            pipeline.swap_plate(plate, double, out, SwapConfig(debias=False, blend="multiband"), resume="auto")
    assert tracked == [1]
    pipeline.swap_plate(plate, double, out, SwapConfig(debias=False, blend="feather"))
    assert tracked == [1, 1] and out.is_dir() and not checkpoint_folder(out).exists()


def test_a_video_swap_resumes_without_tracking_again(tmp_path, double, monkeypatch):
    """A video cannot be appended to: its comp starts again, but the tracking (and detector-bias) passes kept
    are not run again, and the plate is the uninterrupted swap's."""
    import imageio_ffmpeg

    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.face_swap import pipeline

    frames = _read(_frames_plate(tmp_path / "frames", n=6))
    plate = tmp_path / "plate.mp4"
    w = imageio_ffmpeg.write_frames(str(plate), (224, 224), fps=24, macro_block_size=1, ffmpeg_log_level="error")
    w.send(None)
    for f in frames.values():
        w.send(np.ascontiguousarray(f[..., ::-1]))
    w.close()
    ref = pipeline.swap_plate(plate, double, tmp_path / "ref.mp4")
    with monkeypatch.context() as m:
        _stop_at(m, 4)
        with pytest.raises(RuntimeError):
            pipeline.swap_plate(plate, double, tmp_path / "out.mp4")
    monkeypatch.setattr(pipeline, "track_shot", lambda *a, **k: pytest.fail("the plate was tracked again"))
    monkeypatch.setattr(pipeline, "debias_track", lambda *a, **k: pytest.fail("the bias was read again"))
    res = pipeline.swap_plate(plate, double, tmp_path / "out.mp4", resume=True)
    a = [f for _, f in iter_plate_frames(probe_plate(tmp_path / "out.mp4"))]
    b = [f for _, f in iter_plate_frames(probe_plate(tmp_path / "ref.mp4"))]
    assert len(a) == len(b) == 6 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [q.frame for q in res.frames if q.swapped] == [q.frame for q in ref.frames if q.swapped]


def test_the_cli_resumes_and_says_why_it_cannot(tmp_path, capsys, rig_dir, monkeypatch):
    plate = _frames_plate(tmp_path / "plate", n=4)
    out = tmp_path / "shots" / "out"                 # in a folder that does not exist yet
    swap = ["swap", plate, "--double", rig_dir, "--out", out, "--no-debias"]
    with monkeypatch.context() as m:
        _stop_at(m, 2)
        code, _, err = run_cli(capsys, *swap)
    assert code != 0 and not out.exists()
    code, _, err = run_cli(capsys, *swap, "--resume", "--blend", "feather")
    assert code == 1 and "other inputs or options (option blend differs)" in err and len(err.strip().splitlines()) == 1
    code, text, err = run_cli(capsys, *swap, "--resume")
    assert code == 0, err
    assert len(list(out.iterdir())) == 4 and "resumed: the tracking" in " ".join(text.split())


def test_messages_name_a_checkpoints_files_as_they_will_be_published(tmp_path):
    from core.stage_folders import shown_path
    from doppel.face_swap.checkpoint import SwapCheckpoint

    ck = SwapCheckpoint(tmp_path / "sh010", {"k": 1}, resume=False)
    try:
        assert shown_path(ck.frames / "sh010.1001.png") == tmp_path / "sh010" / "sh010.1001.png"
        assert shown_path(ck.side / "strips" / "001001.png") == tmp_path / "sh010_swap" / "strips" / "001001.png"
    finally:
        ck.close(finished=True)
    assert not ck.folder.exists()


def test_a_damaged_tracking_file_is_tracked_again_and_a_bad_resume_value_refused(tmp_path):
    from doppel.face_swap.checkpoint import SwapCheckpoint

    ck = SwapCheckpoint(tmp_path / "sh010", {"k": 1}, resume=False)
    (ck.folder / "tracking.npz").write_bytes(b"cut short")           # a disk fault, not a kill (writes are atomic)
    ck.close(finished=False)
    again = SwapCheckpoint(tmp_path / "sh010", {"k": 1}, resume=True)
    try:
        assert again.resumed and again.tracking() is None
    finally:
        again.close(finished=True)
    with pytest.raises(ValueError, match="resume must be True, False or 'auto'"):
        SwapCheckpoint(tmp_path / "sh011", {"k": 1}, resume="yes")
    assert not (tmp_path / ".sh011.swap.checkpoint").exists()
