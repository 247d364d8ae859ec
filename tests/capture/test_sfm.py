"""Structure from motion through pycolmap on a rendered textured scene with known cameras (walls and a
floor with a random texture, a ChArUco board on the back wall): recovered camera centres match the
truth after a similarity alignment, and the board fixes the metric scale."""

import numpy as np
import pytest
import torch

from capture.charuco import BoardSpec
from capture.npcam import PinholeNP, as_np
from capture.sfm import SfmFailed, distance_scale, run_sfm
from doppel.synthetic_capture import board_texture, intrinsics

W, H = 512, 384
CENTRE_TOL_M = 0.02       # camera centres after similarity alignment (scene ~3 m across)
SCALE_TOL = 0.01          # relative scale error from the board


def quad(p0, ex, ey, uv0, uv1):
    """A quad p0 + a ex + b ey (a, b in [0, 1]) with texture rectangle uv0..uv1 (v up)."""
    p0, ex, ey = map(np.asarray, (p0, ex, ey))
    v = np.array([p0, p0 + ex, p0 + ex + ey, p0 + ey], dtype=np.float32)
    (u0, v0), (u1, v1) = uv0, uv1
    uv = np.array([[u0, v1], [u1, v1], [u1, v0], [u0, v0]], dtype=np.float32)  # p0 = top-left of the rectangle
    return v, uv


def scene(spec):
    import cv2

    rng = np.random.default_rng(0)
    S = 1024
    noise = rng.random((S // 8, S // 8, 3))
    tex = cv2.resize(noise, (S, S), interpolation=cv2.INTER_CUBIC)
    tex = np.clip(0.5 * tex + 0.5 * cv2.resize(rng.random((S // 2, S // 2, 3)), (S, S)), 0, 1).astype(np.float32)
    b = board_texture(spec, 64).astype(np.float32) / 255.0
    bh, bw = b.shape
    tex[:bh, S - bw:] = b[..., None]  # board in the top-right corner of the atlas
    bw_m, bh_m = spec.size_m
    quads = [
        # back wall (z = -1), floor (y = 0), left wall (x = -1.5): noise halves of the atlas
        quad([-1.5, 2.0, -1.0], [3.0, 0, 0], [0, -2.0, 0], (0.0, 0.0), (0.5, 0.5)),
        quad([-1.5, 0.0, -1.0], [3.0, 0, 0], [0, 0, 2.5], (0.0, 0.5), (0.5, 1.0)),
        quad([-1.5, 2.0, 1.5], [0, 0, -2.5], [0, -2.0, 0], (0.5, 0.0), (0.9, 0.4)),
        # the board on the back wall, 1 cm in front of it, upright, top-left corner at (-0.3, 1.4)
        quad([-0.3, 1.4, -0.99], [bw_m, 0, 0], [0, -bh_m, 0], (1 - bw / S, 1 - bh / S), (1.0, 1.0)),
    ]
    verts = np.concatenate([q[0] for q in quads])
    uvs = np.concatenate([q[1] for q in quads])
    faces = np.concatenate([[[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]] for k in range(len(quads))])
    return verts, faces, uvs, tex


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    import cv2

    from capture.camera import Camera
    from neural_render import composite, render_mesh

    spec = BoardSpec(squares_x=5, squares_y=4, square=0.08, marker=0.06)
    verts, faces, uvs, tex = scene(spec)
    cams = []
    for i in range(6):
        a = np.radians(-30 + 60 * i / 5)
        eye = [1.8 * np.sin(a) - 0.2, 1.2 + 0.1 * (i % 2), 1.8 * np.cos(a) - 0.2]
        cams.append(PinholeNP.look_at(f"cam{i}", eye, [-0.2, 1.0, -1.0], intrinsics(W, H, 50.0), W, H))
    d = tmp_path_factory.mktemp("sfm") / "images"
    d.mkdir()
    with torch.no_grad():
        rgba = render_mesh(torch.tensor(verts), torch.tensor(faces), Camera.stack([c.to_camera(torch.float32)
                           for c in cams]), uvs=torch.tensor(uvs), texture=torch.tensor(tex), texture_srgb=True,
                           supersample=1)
    imgs = composite(rgba, (0.3, 0.3, 0.3)).numpy()
    for c, im in zip(cams, imgs, strict=True):
        cv2.imwrite(str(d / f"{c.name}.png"), cv2.cvtColor((im * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return d, cams, spec


def umeyama(src, dst):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2. src, dst (N, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(b.T @ a / len(src))
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = np.trace(np.diag(D) @ S) / a.var(0).sum()
    return s, R, mu_d - s * R @ mu_s


@pytest.fixture(scope="module")
def sfm(rendered, tmp_path_factory):
    d, cams, spec = rendered
    return run_sfm(d, tmp_path_factory.mktemp("work") / "w", board=spec, single_camera=True)


def test_sfm_recovers_cameras_and_board_scale(rendered, sfm):
    d, cams, spec = rendered
    res = sfm
    assert res.unregistered == [] and len(res.cameras) == len(cams)
    assert res.mean_reprojection_px < 1.0
    est = {c.name: as_np(c) for c in res.cameras}
    src = np.array([est[c.name].center for c in cams])
    dst = np.array([c.center for c in cams])
    s, R, t = umeyama(src, dst)
    err = np.linalg.norm((s * src @ R.T + t) - dst, axis=1)
    assert err.max() < CENTRE_TOL_M, err
    assert res.scale_source == "board" and abs(s - 1) < SCALE_TOL, s  # metric already: alignment scale ~1
    f_true = cams[0].K[0, 0]
    assert abs(as_np(res.cameras[0]).K[0, 0] / f_true - 1) < 0.01


def test_sfm_known_distance_and_errors(rendered, sfm, tmp_path):
    d, cams, _ = rendered
    dist = float(np.linalg.norm(cams[0].center - cams[5].center))
    est = [as_np(c) for c in sfm.cameras]
    s = distance_scale(est, "cam0", "cam5", 2 * dist)   # twice the true distance: scale 2 on a metric result
    assert s == pytest.approx(2.0, rel=SCALE_TOL)
    with pytest.raises(SfmFailed, match="camera 'nope'"):
        distance_scale(est, "nope", "cam5", 1.0)
    with pytest.raises(SfmFailed, match="camera 'nope'"):
        run_sfm(d, tmp_path / "work", known_distance=("nope", "cam5", 1.0), single_camera=True)
    (tmp_path / "one").mkdir()
    with pytest.raises(SfmFailed, match="at least 2 images"):
        run_sfm(tmp_path / "one", tmp_path / "w2")


def test_photos_of_cameras_mounted_in_portrait(rendered, tmp_path):
    """Two of the rig's photos stored turned a quarter with EXIF orientation 6 (a body mounted in portrait, as its
    JPEG says): COLMAP calibrates them as stored, Doppel reads them as shown; their cameras come out as shown
    (image size, centres and the board's scale as for the others). Before, they were stored-frame cameras of
    384 x 512 images Doppel reads as 512 x 384, and the board's corners were found in the other frame."""
    import cv2
    from PIL import Image

    from capture.frame_files import oriented

    d, cams, spec = rendered
    out = tmp_path / "images"
    out.mkdir()
    for p in sorted(d.iterdir()):
        shown = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        if p.stem in ("cam2", "cam4"):
            stored = np.ascontiguousarray(np.rot90(shown, 1))
            assert np.array_equal(oriented(stored, 6), shown)
            im = Image.fromarray(stored)
            exif = im.getexif()
            exif[0x0112] = 6
            im.save(out / f"{p.stem}.jpg", quality=95, exif=exif)
        else:
            Image.fromarray(shown).save(out / f"{p.stem}.jpg", quality=95)
    res = run_sfm(out, tmp_path / "work", board=spec)
    assert res.unregistered == [] and len(res.cameras) == len(cams)
    est = {c.name: as_np(c) for c in res.cameras}
    assert all((est[c.name].width, est[c.name].height) == (W, H) for c in cams)
    src = np.array([est[c.name].center for c in cams])
    s, R, t = umeyama(src, np.array([c.center for c in cams]))
    err = np.linalg.norm((s * src @ R.T + t) - np.array([c.center for c in cams]), axis=1)
    # JPEG photos and COLMAP's random sampling: centres within 2 or 5 cm from run to run (the PNG test: 2 cm)
    assert err.max() < 3 * CENTRE_TOL_M, err
    # the board's corners, found in the photos as shown, triangulate through the turned cameras: the right scale
    assert res.scale_source == "board" and abs(s - 1) < 2 * SCALE_TOL, s
    for c in cams:          # each camera looks the way it did, up included (within 2.5 degrees; a wrong turn: 90)
        turn = est[c.name].R @ R.T @ c.R.T
        assert np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1))) < 5.0, c.name


def test_the_same_photos_give_the_same_cameras_every_run_on_any_number_of_threads(rendered, tmp_path):
    """COLMAP seeded, the mapper on one thread (the default): runs on the same photos give the same cameras, whether
    the features and the matching ran on one thread or on two (the photos numbered before their features, every
    pair's RANSAC seeded; before, two threads everywhere gave cameras up to 17 cm apart before the board's alignment,
    and the portrait test above failed its 6 cm bound in one fresh-clone run)."""
    d, cams, spec = rendered
    steps = []
    runs = [run_sfm(d, tmp_path / f"w{n}", board=spec, num_threads=n, progress=lambda step, f: steps.append(step))
            for n in (1, 2, 2)]
    assert [r.threads for r in runs] == [{"features_matching": n, "mapping": 1} for n in (1, 2, 2)]
    centres = [np.array([as_np(c).center for c in r.cameras]) for r in runs]
    for r, centre in zip(runs[1:], centres[1:], strict=True):
        assert [c.name for c in r.cameras] == [c.name for c in runs[0].cameras]
        assert np.abs(centre - centres[0]).max() == 0.0, np.abs(centre - centres[0]).max()
        assert r.n_points == runs[0].n_points
    # every pair matched by COLMAP's exhaustive matching, its blocks of 50 photos counted: one here
    assert runs[0].matching == {"mode": "exhaustive", "pairs": 15}
    assert "matching 15 pairs of photos: block 1 of 1" in steps and "features: 6 of 6 photos" in steps, steps


def test_ctrl_c_stops_structure_from_motion_at_once(rendered, tmp_path):
    """A COLMAP step is one long C++ call, which held Ctrl-C until it ended (a minute into a 24-camera rig's
    matching); COLMAP now runs in a child process: Ctrl-C is heard within a second, the child is gone, and the
    progress said which step ran. The tests' photos upscaled to 1600 px so that their features take seconds."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    import cv2

    d, _, spec = rendered
    big = tmp_path / "big"
    big.mkdir()
    for p in sorted(d.iterdir()):
        cv2.imwrite(str(big / p.name), cv2.resize(cv2.imread(str(p)), (1600, 1200), interpolation=cv2.INTER_CUBIC))
    steps, sent = [], []

    def interrupt() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(1.5, interrupt)       # 1.5 s into the features (6 photos of 1600 px: 10 s or more on
                                                  # one thread, as many cores as photos would take 2 s)

    def progress(step: str, fraction: float) -> None:
        steps.append(step)
        if step == "features of 6 photos":
            timer.start()

    # Ctrl-C as at a terminal, whatever this test run inherited (a background job's SIGINT is ignored)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sfm(big, tmp_path / "w", board=spec, num_threads=1, progress=progress)
        heard = time.perf_counter()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    assert sent and heard - sent[0] < 1.0, heard - sent[0]
    assert steps[:2] == ["checking 6 photos", "features of 6 photos"], steps
    assert multiprocessing.active_children() == []


def _sfm_in_a_worker(args):
    d, work, spec = args
    res = run_sfm(d, work, board=spec)
    return len(res.registered), res.n_points


def test_sfm_runs_in_a_pools_worker(rendered, sfm, tmp_path):
    """A pool's worker is daemonic and may start no process of its own: there COLMAP runs in the worker itself
    (it raised 'daemonic processes are not allowed to have children'), with the cameras of a run in-process."""
    import multiprocessing

    d, _, spec = rendered
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        registered, points = pool.map(_sfm_in_a_worker, [(d, tmp_path / "w", spec)])[0]
    assert registered == len(sfm.registered) == 6, registered


def test_colmaps_error_in_its_process_is_raised_here(tmp_path):
    """COLMAP's error in its child process comes back as one line naming it, the child gone (a photo folder that
    vanished between the check and the features)."""
    import multiprocessing

    from capture.colmap_process import ColmapJob, run_colmap

    (tmp_path / "sparse").mkdir()
    job = ColmapJob(database=tmp_path / "database.db", image_dir=tmp_path / "gone", names=("a.png", "b.png"),
                    sparse_dir=tmp_path / "sparse")
    with pytest.raises(RuntimeError, match="COLMAP failed: "):
        run_colmap(job)
    assert multiprocessing.active_children() == []


def test_each_photo_matched_with_its_most_alike(rendered, sfm, tmp_path):
    """Retrieval (`--matching retrieval`, what a rig of more than 60 photos gets by default): a vocabulary built from
    the photos' own features finds each photo's most alike, and only those pairs are matched: fewer pairs than every
    pair, the same cameras within the tests' tolerance, and the same cameras run after run on any number of
    threads."""
    d, cams, spec = rendered
    reports = []
    res = run_sfm(d, tmp_path / "w", board=spec, single_camera=True, matching="retrieval", neighbours=2,
                  progress=lambda step, f: reports.append((step, f)))
    assert res.matching["mode"] == "retrieval" and res.matching["neighbours"] == 2
    # progress within the features and the matching, from COLMAP's log lines (`capture.colmap_progress`)
    steps = [step for step, _ in reports]
    for k in range(1, 7):
        assert f"features: {k} of 6 photos" in steps, steps
        assert f"visual words: indexing photo {k} of 6" in steps, steps
        assert f"matching each photo with its 2 most alike: photo {k} of 6" in steps, steps
    fractions = [f for _, f in reports]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0, reports
    assert res.matching["visual_words"] >= 256
    assert sfm.matching == {"mode": "exhaustive", "pairs": 15}       # 6 photos: every pair, by default
    assert 6 <= res.matching["pairs"] <= 12, res.matching        # 2 of 5 others each: 6 pairs at least
    assert res.unregistered == [] and len(res.cameras) == len(cams)
    est = {c.name: as_np(c) for c in res.cameras}
    src = np.array([est[c.name].center for c in cams])
    dst = np.array([c.center for c in cams])
    s, R, t = umeyama(src, dst)
    assert np.linalg.norm((s * src @ R.T + t) - dst, axis=1).max() < CENTRE_TOL_M
    assert abs(s - 1) < SCALE_TOL, s
    assert (tmp_path / "w" / "vocabulary_tree.bin").is_file()
    again = run_sfm(d, tmp_path / "w2", board=spec, single_camera=True, matching="retrieval", neighbours=2,
                    num_threads=1)      # every core first, now one: the same tree, pairs and cameras
    assert again.matching == res.matching
    assert [c.name for c in again.cameras] == [c.name for c in res.cameras]
    centres = [np.array([as_np(c).center for c in r.cameras]) for r in (res, again)]
    assert np.abs(centres[0] - centres[1]).max() < 1e-9


def test_matching_picks_every_pair_on_a_small_rig_and_retrieval_on_a_large_one():
    from capture.colmap_retrieval import resolve_matching, vocabulary_words

    assert resolve_matching("auto", 60) == "exhaustive" and resolve_matching("auto", 61) == "retrieval"
    assert resolve_matching("auto", 24, neighbours=10) == "retrieval"
    assert resolve_matching("exhaustive", 500) == "exhaustive" and resolve_matching("retrieval", 3) == "retrieval"
    with pytest.raises(ValueError, match="expected one of auto, exhaustive, retrieval"):
        resolve_matching("vocab", 10)
    assert vocabulary_words(1000) == 256 and vocabulary_words(200_000) == 4096 and vocabulary_words(30_000) == 1024
    assert vocabulary_words(100) == 64                  # never more words than descriptors


def test_retrieval_on_photos_without_features_says_so(tmp_path):
    """Photos with (almost) no SIFT features have no vocabulary to build: one line naming it, COLMAP's child gone."""
    import multiprocessing

    import cv2

    (tmp_path / "flat").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "flat" / f"cam{i}.png"), np.full((96, 128, 3), 90 + 40 * i, np.uint8))
    with pytest.raises(SfmFailed, match="SIFT features in all the photos: too few to find the photos most alike"):
        run_sfm(tmp_path / "flat", tmp_path / "w", matching="retrieval")
    assert multiprocessing.active_children() == []


def test_photos_in_the_rigs_layout_one_folder_per_camera(rendered, sfm, tmp_path):
    """The rig's photos as the board calibration and `doppel capture session` read them (IMAGES_DIR/CAMERA/*.png,
    several moments each, named after their camera): the photos of the moment most cameras saw, the camera named by
    its folder, the board's scale and a known distance by camera name. Before, only a flat folder was read: "found
    0" images here."""
    import shutil

    d, cams, spec = rendered
    rig = tmp_path / "rig"
    for k, c in enumerate(cams):         # each camera names its files after itself (cam0_0002.png), as real rigs do
        (rig / c.name).mkdir(parents=True)
        shutil.copy(d / f"{c.name}.png", rig / c.name / f"{c.name}_0002.png")
        shutil.copy(d / f"{cams[(k + 3) % len(cams)].name}.png", rig / c.name / f"{c.name}_0003.png")  # not its own
    shutil.copy(d / "cam3.png", rig / "cam1" / "cam1_0001.png")  # a moment only cam1 saw: not the one used
    (rig / ".thumbnails").mkdir()
    (rig / "cam9").mkdir()                                   # a card never copied: named, left out
    (rig / "cam9" / "notes.txt").write_text("card 9 missing")
    res = run_sfm(rig, tmp_path / "w", board=spec, single_camera=True)
    assert [c.name for c in res.cameras] == [c.name for c in cams] and res.no_photo == ["cam9"]
    assert res.moment == "0002" and res.stand_in == []
    assert res.registered == [f"{c.name}/{c.name}_0002.png" for c in cams] and res.unregistered == []
    est = {c.name: as_np(c) for c in res.cameras}
    src = np.array([est[c.name].center for c in cams])
    dst = np.array([c.center for c in cams])
    s, R, t = umeyama(src, dst)
    assert np.linalg.norm((s * src @ R.T + t) - dst, axis=1).max() < CENTRE_TOL_M
    assert res.scale_source == "board" and abs(s - 1) < SCALE_TOL, s
    flat = {c.name: as_np(c).center for c in sfm.cameras}       # the same photos in a flat folder: the same cameras
    assert max(np.linalg.norm(est[n].center - flat[n]) for n in flat) < 1e-6
    dist = float(np.linalg.norm(cams[0].center - cams[5].center))
    by_distance = run_sfm(rig, tmp_path / "w2", known_distance=("cam0", "cam5", dist), single_camera=True)
    assert by_distance.scale_source == "distance"


def test_the_vocabulary_is_the_same_built_twice_in_one_process(rendered, tmp_path):
    """The vocabulary's k-means draws from COLMAP's random generator, which the steps before it draw from too: it is
    seeded with the run's seed before the build, so two builds give the same tree (two builds in one process gave
    two trees, and the 96-camera ring's cameras differed by 3 of 96 thousand points between two runs)."""
    from capture.colmap_retrieval import build_vocabulary

    database = _features_database(rendered, tmp_path)
    trees = []
    for k in range(2):
        build_vocabulary(database, tmp_path / f"tree{k}.bin", seed=3)
        trees.append((tmp_path / f"tree{k}.bin").read_bytes())
    assert trees[0] == trees[1]


def _features_database(rendered, tmp_path):
    """A COLMAP database of the tests' photos' features (pycolmap, one thread, in this process)."""
    import pycolmap

    d, _, _ = rendered
    db = tmp_path / "features.db"
    pycolmap.Database.open(db).close()
    options = pycolmap.FeatureExtractionOptions()
    options.num_threads = 1
    pycolmap.extract_features(db, d, extraction_options=options, device=pycolmap.Device.cpu)
    return db


def test_the_vocabularys_sample_is_the_rows_a_joined_array_would_give():
    """`_sample` draws from the photos' descriptors without joining them (some photos have none): the same rows, in
    the same order, as drawing from the joined array with the same seed (so the same tree as before it)."""
    from capture.colmap_retrieval import _sample

    rng = np.random.default_rng(1)
    for seed in range(30):
        per = [rng.integers(0, 255, (int(rng.integers(0, 40)) * (rng.random() > 0.2), 4), dtype=np.uint8)
               for _ in range(int(rng.integers(2, 8)))]
        if not sum(map(len, per)):
            continue
        joined = np.concatenate(per)
        for n in (1, 7, 1000):
            pick = np.sort(np.random.default_rng(seed).choice(len(joined), min(len(joined), n), replace=False))
            assert np.array_equal(_sample(per, n, seed), joined[pick]), (seed, n)


def test_colmaps_progress_lines_become_ticks_and_its_info_lines_stay_off_the_terminal(capfd, monkeypatch):
    """COLMAP's child points fd 2 at a reader while a step runs: its progress lines become ticks (an exhaustive
    block [i/B, j/B] unit (i-1)B+j of B*B); a line goes on to the terminal when it is not glog's or when its severity
    is at least what GLOG_minloglevel asked for (the command line asks for errors only), as before."""
    import os

    from capture.colmap_progress import Tick, colmap_ticks, parse_tick, passes

    head = b"I20261207 20:41:57.609781 140354454025920 "
    assert parse_tick(head + b"feature_extraction.cc:270] Processed file [3/96]\n") == Tick("features", 3, 96)
    assert parse_tick(head + b"pairing.cc:372] Indexing image [1/8]") == Tick("indexing", 1, 8)
    assert parse_tick(head + b"pairing.cc:333] Processing image [8/8]") == Tick("matching", 8, 8)
    assert parse_tick(head + b"pairing.cc:214] Processing block [2/3, 1/3]") == Tick("matching", 4, 9)
    assert parse_tick(head + b"feature_matching.cc:218] in 0.927s") is None
    assert parse_tick(b"Processing image [1/8]") is None                     # not a glog line
    assert not passes(head + b"x.cc:1] note", 2) and passes(head + b"x.cc:1] note", 0)
    assert passes(b"E20261207 20:41:57.609781 1 x.cc:1] failed", 2) and passes(b"Traceback (most recent", 3)

    monkeypatch.setenv("GLOG_minloglevel", "2")
    ticks = []
    with colmap_ticks(ticks.append):
        os.write(2, head + b"pairing.cc:333] Processing image [3/8]\n" + head + b"sift.cc:1685] Creating matcher\n")
        os.write(2, b"E20261207 20:41:58.000001 140354454025920 database.cc:9] disk full\nplain words\n")
    assert ticks == [Tick("matching", 3, 8)]
    err = capfd.readouterr().err
    assert "disk full" in err and "plain words" in err
    assert "Processing image" not in err and "Creating matcher" not in err
    os.write(2, b"after\n")                                    # fd 2 is the terminal's again
    assert capfd.readouterr().err == "after\n"


def test_a_moment_picked_by_name_or_frame_number(tmp_path):
    """`--moment`: the photos of the moment asked for (by its name or its frame number: 3 is 0003), a camera without
    one standing in with its first photo and named; a moment no camera saw, or a moment asked of a flat folder,
    refused naming what there is."""
    from capture.sfm import one_moment

    for cam in ("cam0", "cam1", "cam2"):
        (tmp_path / "rig" / cam).mkdir(parents=True)
        for frame in ("0002", "0003"):
            (tmp_path / "rig" / cam / f"{cam}_{frame}.png").write_bytes(b"")
    (tmp_path / "rig" / "cam1" / "cam1_0001.png").write_bytes(b"")
    (tmp_path / "rig" / "cam2" / "cam2_0003.png").unlink()
    rig = tmp_path / "rig"
    default = one_moment(rig)
    assert default.moment == "0002" and default.stand_in == []        # the moment all three saw
    assert {c: p.name for c, p in default.photos.items()} == {"cam0": "cam0_0002.png", "cam1": "cam1_0002.png",
                                                              "cam2": "cam2_0002.png"}
    for asked in ("0003", "3"):
        pick = one_moment(rig, asked)
        assert pick.moment == "0003" and pick.stand_in == ["cam2"]
        assert {c: p.name for c, p in pick.photos.items()} == {"cam0": "cam0_0003.png", "cam1": "cam1_0003.png",
                                                               "cam2": "cam2_0002.png"}
    assert one_moment(rig, "1").stand_in == ["cam0", "cam2"]
    with pytest.raises(SfmFailed, match=r"moment '7': no camera has a photo of it; the moments are 0001, 0002, "
                                        r"0003 \(3 in all\)"):
        one_moment(rig, "7")
    (tmp_path / "flat").mkdir()
    for i in range(2):
        (tmp_path / "flat" / f"cam{i}.png").write_bytes(b"")
    with pytest.raises(SfmFailed, match="holds its photos directly"):
        run_sfm(tmp_path / "flat", tmp_path / "w", moment="0002")


def test_photos_that_do_not_decode_whole_are_named_before_colmap_runs(tmp_path, capfd):
    """An empty photo (COLMAP skipped it: "not registered"), a PNG and a JPEG cut short by an interrupted copy (COLMAP
    calibrated a camera on what it could read of one): every one named in one line before COLMAP starts; OpenCV's
    own decoder warning kept off the terminal."""
    import multiprocessing

    import cv2

    good = cv2.GaussianBlur((np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8), (0, 0), 5)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"cam{i}.png"), good)
    png = cv2.imencode(".png", good)[1].tobytes()
    jpg = cv2.imencode(".jpg", good)[1].tobytes()
    (tmp_path / "cam2.png").write_bytes(b"")
    (tmp_path / "cam3.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "cam4.jpg").write_bytes(jpg[:-2])                   # cut at its very end: OpenCV decodes it
    assert cv2.imdecode(np.frombuffer(jpg[:-2], np.uint8), cv2.IMREAD_COLOR) is not None
    capfd.readouterr()
    level = cv2.getLogLevel()
    with pytest.raises(SfmFailed, match="3 of 5 photos cannot be read whole") as e:
        run_sfm(tmp_path, tmp_path / "w")
    said = str(e.value)
    assert "cam2.png: image file is empty" in said and "cam3.png: image could not be decoded" in said
    assert "cam4.jpg: JPEG is truncated" in said and "cam0" not in said
    assert "WARN" not in capfd.readouterr().err and cv2.getLogLevel() == level      # OpenCV's level as it was
    assert multiprocessing.active_children() == [] and not (tmp_path / "w" / "database.db").exists()
