"""`doppel capture ...` from the command line: calibrate on rendered board photos, qc, and bad input as
one red line with exit code 1."""

import json

import numpy as np
import pytest

from doppel.cli import main


def run(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_calibrate_cli(tmp_path, capsys):
    from doppel.synthetic_capture import board_calibration_rig, write_board_rig_images

    rig = board_calibration_rig(n_cameras=2, n_poses=5, width=480, height=360, seed=2, distortion=False)
    write_board_rig_images(rig, tmp_path / "imgs", supersample=1)
    out = tmp_path / "calibration.json"
    code = run(["capture", "calibrate", str(tmp_path / "imgs"), "--board",
                "charuco:squares_x=7,squares_y=5,square=0.08,marker=0.06,dict=DICT_5X5_100", "--out", str(out),
                "--colmap", str(tmp_path / "colmap")])
    assert code == 0, capsys.readouterr()
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["cameras"]] == ["cam00", "cam01"]
    assert all(c["rms"] < 0.5 for c in doc["cameras"])
    assert (tmp_path / "colmap" / "cameras.txt").is_file()
    # again over its own calibration: replaced (the usual case); over another tool's file of the name: refused
    # without --force, the file untouched (it was replaced without a word); a non-.json name: refused. --threads
    # (the photos read on every core unless asked) gives the same calibration
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(out), "--threads", "1"]) == 0
    assert json.loads(out.read_text())["cameras"] == doc["cameras"]
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"fx": 1000, "note": "the tracking vendor\'s"}')
    capsys.readouterr()
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(theirs)]) == 1
    assert "exists and is not a Doppel calibration" in capsys.readouterr().err and "vendor" in theirs.read_text()
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(theirs), "--force"]) == 0
    assert [c["name"] for c in json.loads(theirs.read_text())["cameras"]] == ["cam00", "cam01"]
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(tmp_path / "rig.yaml")]) == 1
    assert "give a .json name" in capsys.readouterr().err and not (tmp_path / "rig.yaml").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]     # no claim file left
    # --colmap: written again over its own model; a folder holding COLMAP's own model (its points) is refused
    imgs = str(tmp_path / "imgs")
    assert run(["capture", "calibrate", imgs, "--out", str(out), "--colmap", str(tmp_path / "colmap")]) == 0
    sparse = tmp_path / "sparse0"
    sparse.mkdir()
    (sparse / "points3D.txt").write_text("# 3D point list with one line of data per point:\n1 0.1 0.2 0.3 9 9 9 0.5\n")
    capsys.readouterr()
    assert run(["capture", "calibrate", imgs, "--out", str(out), "--colmap", str(sparse)]) == 1
    assert "holds a COLMAP model Doppel did not write (points3D.txt)" in " ".join(capsys.readouterr().err.split())
    assert "1 0.1 0.2" in (sparse / "points3D.txt").read_text() and not (sparse / "cameras.txt").exists()
    assert run(["capture", "calibrate", imgs, "--out", str(out), "--colmap", str(sparse), "--force"]) == 0
    assert (sparse / "cameras.txt").is_file()


def test_calibrate_cli_matches_moments_of_files_named_after_their_camera(tmp_path, capsys):
    """cam00/cam00_1001.png and cam01/cam01_1001.png are one moment (before: 'never see the board at a moment
    shared ... with the reference camera'); the cameras come out as with shared names."""
    from doppel.synthetic_capture import board_calibration_rig, write_board_rig_images

    rig = board_calibration_rig(n_cameras=2, n_poses=5, width=480, height=360, seed=2, distortion=False)
    write_board_rig_images(rig, tmp_path / "imgs", supersample=1)
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(tmp_path / "same.json")]) == 0
    for cam in ("cam00", "cam01"):
        for f in sorted((tmp_path / "imgs" / cam).iterdir()):
            f.rename(f.with_name(f"{cam}_{1001 + int(f.stem)}{f.suffix}"))
    capsys.readouterr()
    assert run(["capture", "calibrate", str(tmp_path / "imgs"), "--out", str(tmp_path / "named.json")]) == 0
    assert "matched by file name without the camera's name" in capsys.readouterr().out
    same, named = (json.loads((tmp_path / f).read_text()) for f in ("same.json", "named.json"))
    for a, b in zip(same["cameras"], named["cameras"], strict=True):
        np.testing.assert_allclose(np.array(a["R"]), np.array(b["R"]), atol=1e-9)
        np.testing.assert_allclose(np.array(a["t"]), np.array(b["t"]), atol=1e-9)


def test_qc_cli_and_errors(tmp_path, capsys):
    from capture.session import write_session
    from tests.capture.conftest import portrait_cameras

    cams = portrait_cameras(3, size=64)
    rng = np.random.default_rng(0)
    imgs = {c.name: rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for c in cams}
    imgs["cam01"] = np.full((64, 64, 3), 120, np.uint8)  # flat: no detail at all
    write_session(tmp_path / "s", cams, imgs)
    assert run(["capture", "qc", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "blurred" in out and "1 of 3 images with warnings" in out
    (tmp_path / "s" / "images" / "cam02.png").unlink()
    assert run(["capture", "qc", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "cam02" in err and "Traceback" not in err
    assert run(["capture", "calibrate", str(tmp_path / "nope"), "--out", str(tmp_path / "c.json")]) == 1
    # a failed calibration leaves none of the folders it made for its --out (an empty rig/ was left)
    assert run(["capture", "calibrate", str(tmp_path / "nope"), "--out", str(tmp_path / "rig" / "c.json")]) == 1
    assert not (tmp_path / "rig").exists()
    assert run(["capture", "calibrate", str(tmp_path), "--board", "charuco:bogus=1"]) == 1
    assert "unknown key 'bogus'" in capsys.readouterr().err


def test_sfm_works_beside_its_output_not_in_tmp(tmp_path, capsys, monkeypatch):
    """pycolmap's feature database (GBs for a big rig's photos, which may show the actor) is made beside the
    calibration and removed after, not in the system's temporary folder (which a small /tmp cannot hold; a killed run's
    photos' features lay out of a consent purge's reach)."""
    import capture.sfm as sfm
    from capture.npcam import PinholeNP

    seen, threads, matching, moments = [], [], [], []

    def fake_run_sfm(image_dir, work_dir, **kwargs):
        seen.append(work_dir)
        threads.append((kwargs.get("num_threads"), kwargs.get("mapper_threads")))
        matching.append((kwargs.get("matching"), kwargs.get("neighbours")))
        moments.append(kwargs.get("moment"))
        cam = PinholeNP.look_at("cam00", [0, 1, 3], [0, 1, 0], np.diag([500.0, 500.0, 1.0]) + [[0, 0, 320], [0, 0, 240],
                                                                                             [0, 0, 0]], 640, 480)
        return sfm.SfmResult([cam.to_camera()], ["cam00.png"], [], 0.3, 100, 1.0, "none",
                             seconds={"features_s": 1.0, "matching_s": 2.0, "mapping_s": 3.0},
                             matching={"mode": "retrieval", "pairs": 12, "neighbours": 5},
                             moment=kwargs.get("moment"), stand_in=["cam07"] if kwargs.get("moment") else [],
                             threads={"features_matching": kwargs.get("num_threads") or 2,
                                      "mapping": kwargs.get("mapper_threads")})

    monkeypatch.setattr(sfm, "run_sfm", fake_run_sfm)
    (tmp_path / "photos").mkdir()
    out = tmp_path / "show" / "calibration.json"
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--sfm"]) == 0, capsys.readouterr()
    assert seen and seen[0].parent.parent == out.parent and seen[0].parent.name.startswith(".calibration.json.work")
    assert sorted(p.name for p in out.parent.iterdir()) == ["calibration.json"]      # the work folder removed
    # --threads (features and matching: every core unless asked) and --mapper-threads (1, reproducible, unless
    # asked) reach COLMAP, and the result line says what ran on how many; --mapper-threads is for --sfm only
    assert "features and matching on 2 threads, mapping on 1" in capsys.readouterr().out
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--sfm", "--threads", "4",
                "--mapper-threads", "3"]) == 0
    assert threads == [(None, 1), (4, 3)]
    assert "features and matching on 4 threads, mapping on 3" in capsys.readouterr().out
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--mapper-threads", "2"]) == 1
    assert "--mapper-threads is for --sfm" in capsys.readouterr().err
    # --matching / --neighbours likewise (auto and 30 unless asked); an unknown matching is refused
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--sfm", "--matching",
                "retrieval", "--neighbours", "12"]) == 0
    assert matching == [("auto", 30), ("auto", 30), ("retrieval", 12)]
    assert "matching 2 s (12 pairs: each photo's 5 most alike)" in capsys.readouterr().out
    assert json.loads(out.read_text())["sfm"]["matching"] == {"mode": "retrieval", "pairs": 12, "neighbours": 5}
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--neighbours", "12"]) == 1
    assert "--neighbours is for --sfm" in capsys.readouterr().err
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--sfm", "--matching",
                "vocab"]) == 1
    assert "--matching vocab: expected one of auto, exhaustive, retrieval" in capsys.readouterr().err
    # --moment likewise (the moment most cameras saw unless asked), said and kept in the calibration
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--sfm", "--moment", "12"]) == 0
    assert moments[0] is None and moments[-1] == "12"
    said = " ".join(capsys.readouterr().out.split())
    assert "the photos of moment '12'; 1 camera(s) without one, their first photo used: cam07" in said
    kept = json.loads(out.read_text())["sfm"]
    assert kept["moment"] == "12" and kept["stand_in"] == ["cam07"]
    assert run(["capture", "calibrate", str(tmp_path / "photos"), "--out", str(out), "--moment", "12"]) == 1
    assert "--moment is for --sfm" in capsys.readouterr().err


def test_cameras_shows_a_foreign_calibration_and_says_when_its_units_are_not_metres(tmp_path, capsys):
    """`doppel capture cameras`: a Metashape export checked before a session is assembled on it (the rig's size
    in metres), written as Doppel JSON; the same rig in millimetres is said to be so."""
    from capture.calibration_io import read_doppel_json, write_doppel_json
    from capture.npcam import as_np
    from tests.capture.test_metashape_xml import rig, write_export

    xml = write_export(tmp_path / "cameras.xml", rig(4))
    assert run(["capture", "cameras", str(xml), "--out", str(tmp_path / "rig.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "cam03_0001" in out and "1600x1200" in out and "46.1 deg" in out
    assert "rig: 4 cameras spanning 5.016 m" in out and "are the calibration's units metres" not in out
    cams = read_doppel_json(tmp_path / "rig.json")
    assert [c.name for c in cams] == [f"cam0{i}_0001" for i in range(4)]
    mm = [as_np(c) for c in cams]
    for c in mm:
        c.t = c.t * 1000.0
    write_doppel_json(tmp_path / "mm.json", mm)
    assert run(["capture", "cameras", str(tmp_path / "mm.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())                    # as wrapped for the console's width
    assert "spanning 5015.974 m" in out and "are the calibration's units metres?" in out
