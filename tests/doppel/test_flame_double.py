"""Face replacement with a FLAME double: FLAME's MediaPipe embedding for the landmarks, its expression components
and jaw joint for the expressions, the face outline carried over from the face template. The FLAME-format file is
made from an Anny double's head (`doppel.synthetic_flame`): no licensed file."""

import json

import cv2
import numpy as np
import pytest

from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def anny_rig():
    from doppel.doubles import build_default_rig

    return build_default_rig("anny", seed=3)[0]


@pytest.fixture(scope="module")
def flame_dir(anny_rig, tmp_path_factory):
    from doppel.synthetic_flame import write_flame_head

    return write_flame_head(anny_rig, tmp_path_factory.mktemp("flame")).parent


@pytest.fixture(scope="module")
def flame_rig(flame_dir):
    from doppel.doubles import build_default_rig

    return build_default_rig("flame", seed=0, model_file=flame_dir)[0]


def _astronaut(size=256):
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def test_the_jaw_hinge_is_found_from_a_turn_about_it():
    from doppel.synthetic_flame import jaw_hinge

    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.05, (200, 3)) + [0, 0.6, 0.1]
    c = np.array([0.0, 0.62, 0.06])
    theta = rng.uniform(0, 0.3, 200)                        # each vertex turned its own amount about x through c
    r = v - c
    d = np.stack([np.zeros(200), r[:, 1] * (np.cos(theta) - 1) - r[:, 2] * np.sin(theta),
                  r[:, 1] * np.sin(theta) + r[:, 2] * (np.cos(theta) - 1)], 1)
    assert np.allclose(jaw_hinge(v, d), c[1:], atol=1e-9)   # each moved its own angle: the hinge exactly
    assert not np.allclose(jaw_hinge(v + 0.01, d + 0.01), c[1:], atol=1e-3)    # not a turn about c: another


def test_a_flame_rig_has_the_embedding_landmarks_components_and_a_jaw(flame_rig, flame_dir, anny_rig):
    from doppel.face_swap.face_basis import COMPONENT_SCALE, expression_deltas, face_basis
    from reconstruction.fitting.landmarks import FLAME_EMBEDDING_FILE

    names, deltas = expression_deltas(flame_rig)
    assert names[0] == "jawOpen_joint" and names[1:3] == ("expression_000+", "expression_000-") and len(names) == 21
    assert np.allclose(deltas[1], flame_rig.blendshape_deltas[0] * COMPONENT_SCALE)
    assert np.allclose(deltas[2], -deltas[1])
    jaw = deltas[0]
    moving = np.linalg.norm(jaw, axis=1) > 0.002
    assert jaw[moving, 1].mean() < 0                         # the jaw opens downwards
    assert np.linalg.norm(jaw, axis=1).max() > 0.01           # by centimetres at weight 1 (26 degrees)

    basis = face_basis(flame_rig, flame_dir)
    emb = np.load(flame_dir / FLAME_EMBEDDING_FILE)
    assert sorted(basis.ids) == sorted(emb["landmark_indices"]) and not np.isin(basis.ids, np.arange(468, 478)).any()
    k = list(emb["landmark_indices"]).index(basis.ids[0])
    tri = flame_rig.faces[emb["lmk_face_idx"][k]]
    assert np.allclose(basis.neutral[0], emb["lmk_b_coords"][k] @ flame_rig.vertices[tri], atol=1e-6)
    # the embedding was made from the Anny double's landmarks: the FLAME basis sits on them (within 6 mm)
    anny = face_basis(anny_rig)
    pos = {int(i): r for r, i in enumerate(anny.ids)}
    gap = np.linalg.norm(basis.neutral - anny.neutral[[pos[int(i)] for i in basis.ids]], axis=1)
    assert gap.max() < 0.006, gap.max()


@pytest.fixture(scope="module")
def flame_double(flame_rig, flame_dir, tmp_path_factory):
    from doppel.face_swap.double import load_face_double

    rig_dir = tmp_path_factory.mktemp("flame_rig") / "rig"
    flame_rig.save(rig_dir, params={"model": "flame"})
    (rig_dir / "mediapipe_landmark_embedding.npz").write_bytes((flame_dir / "mediapipe_landmark_embedding.npz")
                                                               .read_bytes())
    return load_face_double(rig_dir, rig_dir.parent)


def test_the_points_a_flame_double_lacks_are_carried_from_the_template(flame_rig, flame_dir, anny_rig, tmp_path):
    """FLAME's embedding has no face outline (nor cheeks, forehead): those points come from the face template,
    aligned to the landmarks the double has and moved onto its head; on this head the outline lands within
    millimetres of where the Anny regressor puts the same points; the embedding's own points stay as they are."""
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.face_basis import face_basis

    rig_dir = tmp_path / "rig"
    flame_rig.save(rig_dir, params={"model": "flame"})
    with pytest.raises(FileNotFoundError, match="mediapipe_landmark_embedding.npz"):
        load_face_double(rig_dir, tmp_path)
    (rig_dir / "mediapipe_landmark_embedding.npz").write_bytes((flame_dir / "mediapipe_landmark_embedding.npz")
                                                               .read_bytes())
    double = load_face_double(rig_dir, tmp_path)
    assert double.basis.ids.tolist() == list(range(468))           # completed: every point but the irises
    own = face_basis(flame_rig, rig_dir)
    assert np.array_equal(double.basis.neutral[own.ids], own.neutral)
    assert np.array_equal(double.basis.deltas[:, own.ids], own.deltas)
    anny = face_basis(anny_rig)
    pos = {int(i): r for r, i in enumerate(anny.ids)}
    gap = np.linalg.norm(double.outline.neutral - anny.neutral[[pos[int(i)] for i in double.outline.ids]], axis=1)
    print(f"outline from the template vs the regressor's: median {np.median(gap) * 1000:.1f} mm, "
          f"max {gap.max() * 1000:.1f} mm")
    assert len(double.outline.ids) == 36 and np.median(gap) < 0.004 and gap.max() < 0.008
    w = np.zeros(len(double.basis.names))
    w[0] = 1.0                                                # jaw open: the chin's outline points go down
    chin = double.outline.ids == 152
    assert (double.oval_points(w) - double.oval_points(w * 0))[chin, 1] < -0.005


def _drawn(double, yaw_deg, size=384):
    """The double's head drawn frontal-ish at yaw_deg over grey, and its own landmarks (478, 2) px (NaN: irises)."""
    from scipy.spatial.transform import Rotation

    from doppel.face_swap.render_head import project, render_head

    K = np.array([[1.6 * size, 0, size / 2], [0, 1.6 * size, size / 2], [0, 0, 1.0]])
    R = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix() @ np.diag([-1.0, -1.0, 1.0]) @ \
        Rotation.from_euler("y", 180, degrees=True).as_matrix()              # facing the camera, upright
    t = np.array([0, 0, 0.55]) - R @ double.head_bind.mean(0)
    w = np.zeros(len(double.basis.names))
    rgb, alpha = render_head(double, R, t, w, K, (0, 0, size, size))
    img = (np.clip(rgb * alpha[..., None] + 0.45 * (1 - alpha[..., None]), 0, 1) * 255).astype(np.uint8)
    lm = np.full((478, 2), np.nan)
    lm[double.basis.ids] = project(double.basis.points(w), R, t, K)
    return img, lm


def test_a_double_without_a_texture_gets_a_face_mediapipe_reads(flame_double):
    """A FLAME rig has no UVs: the head is painted from its landmarks (eyes, brows, lips). MediaPipe finds that
    face frontal and turned, close to where the double's own landmarks are; the same head bare grey it reads
    worse (the detector-bias pass reads MediaPipe on the drawn double)."""
    import dataclasses

    from capture.face_tracking import PlateTracker
    from reconstruction.head_tracking import inter_ocular

    assert flame_double.albedo is not None and flame_double.uvs.shape == (3 * len(flame_double.head_faces), 2)
    bare = dataclasses.replace(flame_double, albedo=None)
    errors = {}
    for name, dbl in (("painted", flame_double), ("bare", bare)):
        for yaw in (0, 35):
            img, lm = _drawn(dbl, yaw)
            with PlateTracker(max_faces=1, hands=False) as tracker:
                face = tracker.process(img).face(0)
            ok = np.isfinite(lm).all(1)
            errors[name, yaw] = np.inf if face is None else \
                float(np.linalg.norm(face[ok] - lm[ok], axis=1).mean() / inter_ocular(lm))
    print({k: round(v, 4) for k, v in errors.items()})
    assert errors["painted", 0] < 0.06 and errors["painted", 35] < 0.08, errors
    assert errors["painted", 0] + errors["painted", 35] < errors["bare", 0] + errors["bare", 35], errors


def test_rig_controls_give_coefficients_and_the_jaw_angle_back():
    from doppel.face_swap.face_basis import rig_controls

    w = np.array([[0.2, 0.5, 0.0, 0.0, 0.3], [0.4, 0.0, 0.1, 0.7, 0.0]])
    c = rig_controls(["jawOpen_joint", "expression_000+", "expression_000-", "expression_001+", "expression_001-"], w)
    assert list(c["rig_blendshape_names"]) == ["expression_000", "expression_001"]
    assert np.allclose(c["rig_blendshape_weights"], [[1.5, -0.9], [-0.3, 2.1]])
    assert np.allclose(c["jaw_rad"], [0.09, 0.18])
    anny = rig_controls(["jawOpen", "mouthClose"], w[:, :2])         # ARKit shapes are the rig's own controls
    assert list(anny["rig_blendshape_names"]) == ["jawOpen", "mouthClose"] and "jaw_rad" not in anny
    assert np.allclose(anny["rig_blendshape_weights"], w[:, :2])


def test_a_head_without_face_landmarks_gets_them_from_its_eyes(flame_rig, flame_dir):
    """A SMPL-X double has no face landmarks: MediaPipe's points come from the face template placed by its eye
    joints (here the FLAME-format head taken as one: its placement lands within millimetres of its embedding)."""
    import dataclasses

    from doppel.face_swap.face_basis import face_basis

    as_smplx = dataclasses.replace(flame_rig, metadata={"model": "smplx"})
    placed = face_basis(as_smplx)
    own = face_basis(flame_rig, flame_dir)
    assert placed.ids.tolist() == list(range(468)) and placed.names == own.names
    gap = np.linalg.norm(placed.neutral[own.ids] - own.neutral, axis=1)
    print(f"eye-placed vs the embedding: median {np.median(gap) * 1000:.1f} mm, max {gap.max() * 1000:.1f} mm")
    assert np.median(gap) < 0.004 and gap.max() < 0.012


def test_a_double_without_known_face_landmarks_is_refused(tmp_path, flame_rig):
    import dataclasses

    from doppel.face_swap.face_basis import face_basis
    from reconstruction.body_models import SMPLXModel
    from rigging import Rig
    from tests.reconstruction.synthetic_models import write_smplx_npz

    rig = Rig.from_body_model(SMPLXModel(write_smplx_npz(tmp_path / "SMPLX_NEUTRAL.npz")))   # random skin weights
    with pytest.raises(ValueError, match="too few to place face landmarks"):
        face_basis(rig)
    blind = dataclasses.replace(flame_rig, metadata={"model": "smplx"},
                                joint_names=["global", "neck", "jaw", "eye_a", "eye_b"])
    with pytest.raises(ValueError, match="no face landmarks known for this double.*no eye joints"):
        face_basis(blind)


def test_doppel_rig_keeps_the_embedding_and_doppel_swap_puts_the_flame_double_in(tmp_path, capsys, flame_dir):
    rig_dir = tmp_path / "rig"
    code, _, err = run_cli(capsys, "rig", "--model", "flame", "--model-file", flame_dir, "--out", rig_dir)
    assert code == 0, err
    assert (rig_dir / "mediapipe_landmark_embedding.npz").is_file()
    man = json.loads((rig_dir / "manifest.json").read_text())
    assert "face_landmarks" in man["outputs"]
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "swapped.png"
    code, _, err = run_cli(capsys, "swap", img, "--double", rig_dir, "--out", out, "--blend", "feather")
    assert code == 0, err
    tracks = np.load(tmp_path / "swapped_swap" / "tracks.npz")
    assert tracks["valid"].tolist() == [True]
    assert list(tracks["expression_names"][:3]) == ["jawOpen_joint", "expression_000+", "expression_000-"]
    w = tracks["expression"][0]                        # the rig's own controls: coefficients and the jaw's angle
    assert list(tracks["rig_blendshape_names"]) == [f"expression_{i:03d}" for i in range(10)]
    assert np.allclose(tracks["rig_blendshape_weights"][0], 3.0 * (w[1::2] - w[2::2]), atol=1e-5)
    assert np.isclose(tracks["jaw_rad"][0], 0.45 * w[0], atol=1e-6)
    assert tracks["fit_error_iod"][0] < 0.05 and tracks["error_iod"][0] < 0.12
    before, after = _astronaut().astype(float), cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(float)
    from neural_render.face_composite import polygon_mask

    face = polygon_mask((256, 256), tracks["landmarks"][0])
    diff = np.abs(before - after).mean(-1)
    assert diff[face].mean() > 8 and diff[~face].mean() < 3
    # the face performance onto the FLAME rig: its components' coefficients, the jaw joint's angle, the head on
    # FLAME's neck joint (`doppel retarget SWAP_DIR`)
    code, _, err = run_cli(capsys, "retarget", tmp_path / "swapped_swap", "--rig", rig_dir, "--out", tmp_path / "face",
                           "--preview-size", "64")
    assert code == 0, err
    from rigging import Rig
    from rigging.animation import Animation

    anim, rig = Animation.load(tmp_path / "face"), Rig.load(rig_dir)
    assert np.allclose(anim.blendshape_weights[0], tracks["rig_blendshape_weights"][0], atol=1e-5)
    jaw = rig.joint_names.index("jaw")
    angle = np.degrees(np.arccos(np.clip((np.trace(anim.local_rotations[0, jaw]) - 1) / 2, -1, 1)))
    assert np.isclose(angle, np.degrees(abs(tracks["jaw_rad"][0])), atol=0.01)
    neck = rig.joint_names.index("neck")
    assert not np.allclose(anim.local_rotations[0, neck], np.eye(3), atol=1e-4)    # the head turned as tracked


def test_a_flame_fit_becomes_a_double_that_swaps(tmp_path, capsys, flame_dir, anny_rig):
    """The issue's path for FLAME: `doppel fit --model flame` on a capture (face landmarks only: views from behind
    see none, and the fit says so instead of failing), `doppel rig --fit` (the model file the fit used, without
    --model-file or $DOPPEL_MODELS_DIR), then `doppel swap` with that double; with FLAME's texture space
    (FLAME_texture.npz) beside the model file, the baked texture and a neural double trained on the fit draw the
    face."""
    import shutil

    s = tmp_path / "synth"
    assert run_cli(capsys, "capture", "synth", "--out", s, "--cameras", 8, "--size", 384, "--seed", 7)[0] == 0
    assert run_cli(capsys, "capture", "ingest", s / "session", "--out", tmp_path / "ing")[0] == 0
    models = shutil.copytree(flame_dir, tmp_path / "flame")      # the user's FLAME folder, without texture space
    code, _, err = run_cli(capsys, "fit", s / "session", "--landmarks", tmp_path / "ing", "--out", tmp_path / "fit",
                           "--model", "flame", "--model-file", models)
    assert code == 0, err
    per_view = json.loads((tmp_path / "fit" / "metrics.json").read_text())["view_reprojection_px"]
    seen = [v for v in per_view.values() if v is not None]
    assert None in per_view.values() and len(seen) >= 2 and max(seen) < 15.0, per_view
    code, _, err = run_cli(capsys, "rig", "--fit", tmp_path / "fit", "--out", tmp_path / "rig")   # the fit's model
    assert code == 0, err
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR))
    code, _, err = run_cli(capsys, "swap", img, "--double", tmp_path / "rig", "--out", tmp_path / "o.png")
    assert code == 0, err
    assert np.load(tmp_path / "o_swap" / "tracks.npz")["fit_error_iod"][0] < 0.05
    # FLAME's main file has no UVs: without its texture space the photos cannot be baked, and `doppel texture`
    # says what to download; with FLAME_texture.npz beside the model file the fit gets its layout, the actor's
    # photos are baked on it, and the rig built with that texture draws it in the swap instead of a painted face
    from doppel.face_swap.double import load_face_double
    from doppel.synthetic_flame import flame_texture_arrays

    code, _, err = run_cli(capsys, "texture", s / "session", "--fit", tmp_path / "fit", "--out", tmp_path / "tex",
                           "--size", 256)
    assert code != 0 and "FLAME_texture.npz" in err and not (tmp_path / "tex").exists()
    space = flame_texture_arrays(anny_rig)
    np.savez(models / "FLAME_texture.npz", **space)        # a fit made before the download: the model file's
    uvs = space["vt"]
    code, _, err = run_cli(capsys, "texture", s / "session", "--fit", tmp_path / "fit", "--out", tmp_path / "tex",
                           "--size", 256)
    assert code == 0, err
    code, _, err = run_cli(capsys, "rig", "--fit", tmp_path / "fit", "--texture", tmp_path / "tex", "--out",
                           tmp_path / "rig2")
    assert code == 0, err
    double = load_face_double(tmp_path / "rig2", tmp_path)
    assert np.array_equal(double.uvs, uvs) and double.albedo.shape == (256, 256, 3)     # the baked texture
    code, _, err = run_cli(capsys, "swap", img, "--double", tmp_path / "rig2", "--out", tmp_path / "o2.png")
    assert code == 0, err
    # and a neural double trained on that fit draws the FLAME double's face
    code, _, err = run_cli(capsys, "render", "train", s / "session", "--fit", tmp_path / "fit", "--out",
                           tmp_path / "model", "--iterations", 5, "--size", 64)
    assert code == 0, err
    code, _, err = run_cli(capsys, "swap", img, "--double", tmp_path / "model", "--rig", tmp_path / "rig2", "--out",
                           tmp_path / "o3.png")
    assert code == 0, err
    assert json.loads((tmp_path / "o3_swap" / "manifest.json").read_text())["params"]["renderer"] == "neural"


def test_a_head_fit_is_checked_against_the_person_by_what_it_covers(tmp_path):
    """The neural stages refuse a fit of another session by its silhouette: IoU with the person masks for a body,
    but a head model (FLAME) covers only the head, so its check is the share of its silhouette inside the person."""
    import torch

    from capture import Camera
    from doppel.neural_inputs import FitMesh, check_fit_matches_session

    cam = Camera(K=torch.tensor([[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]), R=torch.diag(torch.tensor([1.0, -1, -1])),
                 t=torch.tensor([0, 0, 2.0]), width=32, height=32)
    square = np.array([[-0.25, -0.25, 0], [0.25, -0.25, 0], [0.25, 0.25, 0], [-0.25, 0.25, 0]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    person = np.zeros((32, 32), bool)
    person[:, 4:28] = True                                   # the person: far more than the head
    uv = np.zeros((4, 2), np.float32)

    def fit(model, shift):
        return FitMesh(tmp_path, model, {"f": square + np.float32([shift, 0, 0])}, faces, uv, faces)

    assert check_fit_matches_session(fit("flame", 0.0), [cam], [person], "f") > 0.95
    with pytest.raises(ValueError, match="inside the person masks"):       # another session's head: outside
        check_fit_matches_session(fit("flame", 0.9), [cam], [person], "f")
    with pytest.raises(ValueError, match="silhouette IoU"):                 # as a body it would be refused
        check_fit_matches_session(fit("anny", 0.0), [cam], [person], "f")


def test_a_truncated_embedding_is_one_clear_error(flame_rig, flame_dir, tmp_path):
    from doppel.face_swap.double import load_face_double

    rig_dir = tmp_path / "rig"
    flame_rig.save(rig_dir, params={"model": "flame"})
    whole = (flame_dir / "mediapipe_landmark_embedding.npz").read_bytes()
    (rig_dir / "mediapipe_landmark_embedding.npz").write_bytes(whole[:300])
    with pytest.raises(ValueError, match="not a readable plain-array .npz"):
        load_face_double(rig_dir, tmp_path)


def _smplx_face_downloads(tmp_path, anny_rig, flame_dir):
    """$DOPPEL_MODELS_DIR as a user with SMPL-X and FLAME has it, the Anny double standing in for SMPL-X: the
    FLAME-format head was cut from it, so the SMPL-X <-> FLAME correspondence is the head's vertex ids."""
    import shutil

    from doppel.face_swap.head_region import subtree_weight
    from reconstruction.fitting.smplx_face import SMPLX_FLAME_IDS_FILE

    models = tmp_path / "models"
    shutil.copytree(flame_dir, models / "flame")
    (models / "smplx").mkdir()
    np.save(models / "smplx" / SMPLX_FLAME_IDS_FILE, np.flatnonzero(subtree_weight(anny_rig, "neck01") > 0.5))
    return models


def test_flames_embedding_carried_onto_smplx_lands_where_flames_own_does(tmp_path, monkeypatch, anny_rig, flame_rig,
                                                                        flame_dir):
    """SMPL-X's head is FLAME's mesh: through SMPL-X__FLAME_vertex_ids.npy, FLAME's MediaPipe embedding puts the
    face points on SMPL-X exactly where it puts them on FLAME; an SMPL-X rig keeps the result and swaps with it
    (without the downloads: the eye-placed template points)."""
    import dataclasses

    from doppel.face_swap.face_basis import face_basis
    from reconstruction.fitting.smplx_face import find_smplx_face_embedding, write_smplx_face_embedding

    assert find_smplx_face_embedding(anny_rig.num_vertices) is None                    # nothing downloaded
    monkeypatch.setenv("DOPPEL_MODELS_DIR", str(_smplx_face_downloads(tmp_path, anny_rig, flame_dir)))
    face = find_smplx_face_embedding(anny_rig.num_vertices)
    own = face_basis(flame_rig, flame_dir)
    points = np.einsum("lk,lkc->lc", face["bary"], anny_rig.vertices[face["vertex_index"]])
    assert face["landmark_indices"].tolist() == sorted(own.ids.tolist())
    assert np.allclose(points, own.neutral[np.argsort(own.ids)], atol=1e-6)
    rig_dir = tmp_path / "rig"
    rig_dir.mkdir()
    write_smplx_face_embedding(rig_dir, face)
    monkeypatch.delenv("DOPPEL_MODELS_DIR")
    as_smplx = dataclasses.replace(anny_rig, metadata={"model": "smplx"})
    basis = face_basis(as_smplx, rig_dir)                                               # the rig's copy
    assert basis.ids.tolist() == face["landmark_indices"].tolist() and np.allclose(basis.neutral, points)
    assert len(face_basis(as_smplx, tmp_path).ids) == 468                               # none: eye-placed
    with pytest.raises(ValueError, match="beyond the model's 100 vertices"):
        find_smplx_face_embedding(100, [rig_dir])
    f = rig_dir / "smplx_mediapipe_embedding.npz"
    f.write_bytes(f.read_bytes()[:200])                                                 # truncated: one line
    with pytest.raises(ValueError, match="not a readable SMPL-X face embedding"):
        find_smplx_face_embedding(anny_rig.num_vertices, [rig_dir])


def test_an_smplx_rig_and_fit_use_flames_embedding_from_the_models_folder(tmp_path, monkeypatch, capsys, anny_rig,
                                                                         flame_dir):
    """`doppel rig --model smplx` writes smplx_mediapipe_embedding.npz when the downloads are there; a session fit
    of SMPL-X adds the face-mesh points to its pose joints (ids from the correspondence, checked in range)."""
    from reconstruction.body_models import SMPLXModel
    from reconstruction.fitting import FitConfig
    from reconstruction.fitting.landmarks import model_landmarks
    from reconstruction.fitting.smplx_face import SMPLX_FACE_EMBEDDING_FILE, SMPLX_FLAME_IDS_FILE
    from reconstruction.session_fit import _kind, session_spec
    from tests.reconstruction.synthetic_models import write_smplx_npz

    models = _smplx_face_downloads(tmp_path, anny_rig, flame_dir)
    path = write_smplx_npz(models / "smplx" / "SMPLX_NEUTRAL.npz")
    model = SMPLXModel(path)
    monkeypatch.setenv("DOPPEL_MODELS_DIR", str(models))
    with pytest.raises(ValueError, match="ids outside"):                    # the Anny ids: not this small model
        session_spec(model, FitConfig())
    ids = np.random.default_rng(0).integers(0, model.num_vertices, len(np.load(models / "smplx" /
                                                                              SMPLX_FLAME_IDS_FILE)))
    np.save(models / "smplx" / SMPLX_FLAME_IDS_FILE, ids)
    spec = session_spec(model, FitConfig())
    joints = session_spec(model, FitConfig(correspondences="joints"))
    n_face = len(np.load(models / "flame" / "mediapipe_landmark_embedding.npz")["landmark_indices"])
    assert len(joints) == 16 and len(spec) == 16 + n_face and _kind(model, spec) == "joints + flame-embedding"
    out = model.forward()
    lm = model_landmarks(out.vertices, out.joints, spec)[0]
    assert torch_close(lm[:16], out.joints[0, joints.joint_index])
    k = 20
    assert torch_close(lm[16 + k], (spec.reg_weight[16 + k][:, None] * out.vertices[0, spec.reg_index[16 + k]]
                                    .double().numpy()).sum(0))
    code, _, err = run_cli(capsys, "rig", "--model", "smplx", "--model-file", path, "--out", tmp_path / "rig")
    assert code == 0, err
    assert (tmp_path / "rig" / SMPLX_FACE_EMBEDDING_FILE).is_file()
    outputs = json.loads((tmp_path / "rig" / "manifest.json").read_text())["outputs"]
    assert outputs["face_landmarks"]["path"] == SMPLX_FACE_EMBEDDING_FILE


def torch_close(a, b, atol=1e-5):
    return np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=atol)
