"""An actor's face reference (`doppel actor face`): a swap under --plate-actor swaps only the person it shows."""

import datetime as dt

import cv2
import numpy as np
import pytest

from tests.cli_runner import run_cli


def _write(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _cameraman():
    import skimage.data

    return np.ascontiguousarray(cv2.resize(np.repeat(skimage.data.camera()[0:300, 100:400, None], 3, axis=2),
                                           (256, 256)))


def _astronaut():
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A workspace: 'jane' (rigged, face_replace), 'stunt' (face_replace), 'extra' (rig only) -> (ws, root)."""
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace
    from doppel.doubles import build_default_rig

    root = tmp_path_factory.mktemp("studio") / "ws"
    ws = Workspace.init(root)
    until = dt.date.today() + dt.timedelta(days=9)
    for actor, uses in (("jane", ["rig", "face_replace"]), ("stunt", ["face_replace"]), ("extra", ["rig"])):
        add_actor(ws, actor.title(), actor_id=actor)
        grant(ws, actor, uses, "Film", until)
    rig, params, _ = build_default_rig("anny", seed=3)
    rig.save(root / "rigs" / "jane", params=params)
    return ws, root


def _cut_plate(folder):
    """The cameraman for 4 frames, cut to the astronaut for 4."""
    from doppel.face_swap.stills import plate_from_still

    folder.mkdir()
    frames = [f for k, s in enumerate((_cameraman(), _astronaut())) for f in plate_from_still(s, 4, seed=k,
                                                                                              strength=0.2)]
    for i, f in enumerate(frames):
        _write(folder / f"f.{i:04d}.png", f)
    return frames


def test_a_face_reference_is_made_under_consent_and_holds_no_photo(studio, tmp_path, capsys):
    ws, root = studio
    photo = _write(tmp_path / "extra.png", _astronaut())
    code, _, err = run_cli(capsys, "actor", "face", "extra", photo, "--production", "Film", "-W", root)
    assert code == 1 and "face_replace" in err and not (root / "references" / "extra").exists()
    both = [_write(tmp_path / "a.png", _astronaut()), _write(tmp_path / "c.png", _cameraman())]
    code, _, err = run_cli(capsys, "actor", "face", "stunt", *both, "--production", "Film", "-W", root)
    assert code == 1 and "shows another person than" in err, err
    assert not (root / "references" / "stunt").exists()
    turned = _write(tmp_path / "a2.jpg", _astronaut()[:, ::-1])
    code, out, err = run_cli(capsys, "actor", "face", "stunt", both[0], turned, "--production", "Film", "-W", root)
    assert code == 0 and "2 photo(s) described" in out, err
    folder = root / "references" / "stunt"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "face.png", "face_reference.npz", "faces.png", "manifest.json"]
    with np.load(folder / "face_reference.npz") as z:
        assert z["descriptors"].shape == (2, 128)
    face, faces = cv2.imread(str(folder / "face.png")), cv2.imread(str(folder / "faces.png"))
    assert faces.shape[0] == face.shape[0] == 160 and faces.shape[1] > 1.8 * face.shape[1]   # both photos' faces
    code, out, _ = run_cli(capsys, "actor", "list", "-W", root)
    assert code == 0 and "stunt" in out and out.count("none") == 2      # jane and extra have none
    code, _, err = run_cli(capsys, "review", root, "--out", tmp_path / "site")          # the actor's page shows it
    assert code == 0, err
    page = (tmp_path / "site" / "actor-stunt.html").read_text()
    img = page.split("<h2>Face reference</h2>")[1].split("<img src='")[1].split("'")[0]
    assert img.endswith("faces.png") and (tmp_path / "site" / img).is_file()
    assert "None: a swap under" in (tmp_path / "site" / "actor-jane.html").read_text()


def test_the_plate_actors_face_reference_decides_whom_the_swap_takes(studio, tmp_path, capsys):
    """The plate opens on the cameraman and cuts to the astronaut, whose face reference 'stunt' has: by the
    reference her frames are swapped and his pass through; a plate that never shows her is refused, nothing
    written; a reference of somebody else, a photo of another person, --no-identify or an edited reference: one
    line each."""
    import json
    import shutil

    ws, root = studio
    if not (root / "references" / "stunt").exists():
        code, _, err = run_cli(capsys, "actor", "face", "stunt", _write(tmp_path / "a.png", _astronaut()),
                               "--production", "Film", "-W", root)
        assert code == 0, err
    frames = _cut_plate(tmp_path / "cut")
    swap = ["swap", tmp_path / "cut", "--double", root / "rigs" / "jane", "--actor", "jane", "--production", "Film",
            "--plate-actor", "stunt", "-W", root]
    code, out, err = run_cli(capsys, *swap, "--out", tmp_path / "o")
    assert code == 0, err
    others = np.load(tmp_path / "o_swap" / "tracks.npz")["face_not_performer"].tolist()   # (frames are watermarked)
    assert others == [True] * 4 + [False] * 4, others   # without the reference: the cameraman's swapped (test_swap)
    assert "performer: stunt, as their face reference" in out and "passed through: 0-3" in out
    assert "--no-identify" not in out                       # no way to swap the others with a reference
    assert "first found at frame 4" in out                   # the cut to her
    report = (tmp_path / "o_swap" / "swap_report.html").read_text()
    assert 'src="performer_in_plate.png"' in report and (tmp_path / "o_swap" / "performer_in_plate.png").is_file()
    manifest = json.loads((tmp_path / "o_swap" / "manifest.json").read_text())
    assert manifest["params"]["plate_performer_check"].startswith("face reference")
    assert "face_reference" in manifest["inputs"]
    # a face track given by --landmarks (here both people's, from a swap outside the workspace without the check):
    # each given face is checked, the cameraman's pass through
    code, _, err = run_cli(capsys, "swap", tmp_path / "cut", "--double", root / "rigs" / "jane", "--out",
                           tmp_path / "free", "--no-identify")
    assert code == 0, err
    track = tmp_path / "free_swap" / "tracks.npz"
    assert np.isfinite(np.load(track)["landmarks"]).all()
    code, out, err = run_cli(capsys, *swap, "--out", tmp_path / "given", "--landmarks", track)
    assert code == 0, err
    others = np.load(tmp_path / "given_swap" / "tracks.npz")["face_not_performer"].tolist()
    assert others == [True] * 4 + [False] * 4 and "passed through: 0-3" in out, others
    only_cam = tmp_path / "cam"
    only_cam.mkdir()
    for i in range(3):
        _write(only_cam / f"f.{i:04d}.png", frames[i])
    code, _, err = run_cli(capsys, *[only_cam if a == tmp_path / "cut" else a for a in swap], "--out", tmp_path / "x")
    assert code == 1 and "none is stunt's (their face reference)" in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x_swap").exists()
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "x", "--no-identify")
    assert code == 1 and "stunt's face reference tells the performer by their face" in err
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "x", "--performer-photo",
                           _write(tmp_path / "cam.png", _cameraman()))
    assert code == 1 and "shows another person than stunt's face reference" in err
    # jane's reference given for stunt's plate: the gate refuses (it is jane's likeness)
    code, _, err = run_cli(capsys, "actor", "face", "jane", _write(tmp_path / "j.png", _cameraman()), "--production",
                           "Film", "-W", root)
    assert code == 0, err
    code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "x", "--face-reference", root / "references" / "jane")
    assert code == 1 and "from several actors" in err and "jane is 'jane''s" in err, err
    assert not (tmp_path / "x").exists()
    # an edited reference (the cameraman's descriptors put in stunt's) is refused, never ignored
    saved = tmp_path / "saved"
    shutil.copytree(root / "references" / "stunt", saved)
    shutil.copy(root / "references" / "jane" / "face_reference.npz", root / "references" / "stunt")
    try:
        code, _, err = run_cli(capsys, *swap, "--out", tmp_path / "x")
        assert code == 1 and "differs from the face reference's manifest" in err, err
    finally:
        shutil.rmtree(root / "references" / "stunt")
        shutil.copytree(saved, root / "references" / "stunt")


def test_without_a_face_reference_the_plate_actor_is_said_unchecked(studio, tmp_path, capsys):
    ws, root = studio
    from assets.actors import add_actor
    from assets.consent import grant

    add_actor(ws, "Other", actor_id="other")
    grant(ws, "other", ["face_replace"], "Film", dt.date.today() + dt.timedelta(days=9))
    img = _write(tmp_path / "plate.png", cv2.resize(_astronaut(), (240, 240)))   # bytes no other test registered
    code, out, err = run_cli(capsys, "swap", img, "--double", root / "rigs" / "jane", "--actor", "jane",
                             "--production", "Film", "--plate-actor", "other", "-W", root, "--out", tmp_path / "o.png")
    assert code == 0, err
    assert "plate performer not checked: other has no face reference (doppel actor face other PHOTO...)" in out


def test_a_face_reference_made_under_a_revoked_consent_is_not_used(tmp_path, capsys):
    """Revoking the consent a reference was made under lists it for deletion, and a swap refuses to use it."""
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.lineage import outputs_under_consent
    from assets.workspace import Workspace
    from doppel.face_reference import FaceReferenceError, find_face_reference

    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Stunt", actor_id="stunt")
    until = dt.date.today() + dt.timedelta(days=9)
    first = grant(ws, "stunt", ["face_replace"], "Film", until)
    grant(ws, "stunt", ["face_replace"], "Sequel", until)
    code, _, err = run_cli(capsys, "actor", "face", "stunt", _write(tmp_path / "a.png", _astronaut()),
                           "--production", "Film", "-W", ws.root)
    assert code == 0, err
    assert find_face_reference(ws, "stunt") == ws.root / "references" / "stunt"
    code, out, _ = run_cli(capsys, "consent", "revoke", first.id, "--reason", "withdrawn", "-W", ws.root)
    assert code == 0 and "outputs to withdraw or delete" in out
    assert [a.kind for a in outputs_under_consent(ws, first.id)[0]] == ["face_reference"]
    with pytest.raises(FaceReferenceError, match="revoked"):
        find_face_reference(ws, "stunt")


def test_a_face_reference_from_the_actors_capture_takes_the_widest_faces(tmp_path, capsys):
    """--capture SESSION: the cameras that show one face wide enough, the widest first (a blank view and a face
    too small are left out)."""
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace
    from capture.session import write_session
    from doppel.face_reference import capture_views
    from tests.capture.conftest import portrait_cameras

    cams = portrait_cameras(4, size=256)
    import skimage.data

    head = skimage.data.astronaut()[0:300, 100:400]

    def framed(side):
        img = np.full((256, 256, 3), 90, np.uint8)
        a = (256 - side) // 2
        img[a:a + side, a:a + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
        return img

    big, mid, small = framed(256), framed(160), framed(96)     # faces 79, 50 and 30 px wide
    views = [np.full((256, 256, 3), 90, np.uint8), mid, small, big]
    session = write_session(tmp_path / "session", cams, {c.name: v for c, v in zip(cams, views, strict=True)})
    chosen = capture_views(session, 4)
    assert [p.stem for p in chosen] == [cams[3].name, cams[1].name], chosen
    assert [p.stem for p in capture_views(session, 1)] == [cams[3].name]
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Stunt", actor_id="stunt")
    grant(ws, "stunt", ["face_replace"], "Film", dt.date.today() + dt.timedelta(days=9))
    code, out, err = run_cli(capsys, "actor", "face", "stunt", "--capture", session, "--production", "Film",
                             "-W", ws.root)
    assert code == 0 and "2 view(s) of the capture described" in out, err
    code, _, err = run_cli(capsys, "actor", "face", "stunt", "--production", "Film", "-W", ws.root)
    assert code != 0 and "--capture" in err
