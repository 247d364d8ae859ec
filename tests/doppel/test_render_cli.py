"""`doppel texture`, `doppel render train` and `doppel render shot` on a tiny synthetic session (a textured sphere
photographed by 8 cameras at 64 px), and their bad inputs: one error line each, nothing written."""

import json
import shutil

import numpy as np
import pytest
import torch

from capture.session import write_session
from core.storage import write_manifest
from neural_render.image_io import read_exr
from tests.cli_runner import run_cli
from tests.doppel.sphere_double import fit_folder as _fit_folder
from tests.doppel.sphere_double import model_rig_and_spin as _model_rig_and_spin
from tests.doppel.sphere_double import sphere_rig as _sphere_rig
from tests.doppel.sphere_double import spin_animation as _spin_animation
from tests.neural_render.scenes import albedo_texture, photograph, ring_cameras, uv_sphere


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_texture_train_and_shot(tmp_path, capsys, sphere_session):
    s, fit = sphere_session / "session", sphere_session / "fit"
    code, out, err = run_cli(capsys, "texture", s, "--fit", fit, "--out", tmp_path / "tex", "--size", "256")
    assert code == 0, err
    written = {p.name for p in (tmp_path / "tex").iterdir()}
    assert {"albedo.png", "albedo.exr", "coverage.png", "manifest.json"} <= written
    assert json.loads((tmp_path / "tex" / "metrics.json").read_text())["seen_fraction_of_islands"] > 0.5
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "model", "--holdout",
                             "cam3", "--size", "60", "--iterations", "4", "--device", "cpu")
    assert code == 0, err
    assert "rounded to 64" in " ".join(out.split())
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"model.safetensors", "config.json", "history.json", "holdout.png", "manifest.json"} <= names
    assert not (tmp_path / ".model.checkpoint").exists()
    for renderer in ("neural", "cgi"):
        shot = tmp_path / f"shot_{renderer}"
        code, out, err = run_cli(capsys, "render", "shot", tmp_path / "model", "--cameras", s / "calibration.json",
                                 "--camera", "cam1", "--renderer", renderer, "--size", "64", "--out", shot)
        assert code == 0, err
        from PIL import Image

        png = np.asarray(Image.open(shot / "cam1" / "0000.png"))
        exr = read_exr(shot / "cam1" / "0000.exr")
        assert png.shape == (64, 64, 4) and exr.shape == (64, 64, 4)
        assert 0.05 < (png[..., 3] > 127).mean() < 0.9      # the sphere, not an empty or full frame
        assert not (shot / "cam1.mp4").exists()              # one frame: no movie
        assert json.loads((shot / "manifest.json").read_text())["params"]["jitter"] == 4   # the default


def test_multi_frame_take_trains_on_every_frame_and_shoots_a_movie(tmp_path, capsys):
    v, f, uv, fuv = uv_sphere()
    v2 = v + torch.tensor([0.1, 0.0, 0.0])
    cams = ring_cameras(6, 64)
    alb = albedo_texture(64)
    for frame, verts in (("000", v), ("001", v2)):
        imgs, _ = photograph(verts, f, uv, fuv, cams, alb)
        write_session(tmp_path / "s", list(cams), {c.name: imgs[i].numpy() for i, c in enumerate(cams)}, frame=frame)
    _fit_folder(tmp_path / "fit", v, f, uv, fuv, later=[("001", v2)])
    code, out, err = run_cli(capsys, "render", "train", tmp_path / "s", "--fit", tmp_path / "fit", "--out",
                             tmp_path / "m", "--size", "64", "--iterations", "2", "--device", "cpu",
                             "--output-filter", "0.08")
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["frames"] == 2 and meta["config"]["output_filter"] == 0.08
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", tmp_path / "s" / "calibration.json",
                             "--camera", "cam0", "--out", tmp_path / "shot")
    assert code == 0, err                      # a trained model keeps the jitter default, filter or not
    params = json.loads((tmp_path / "shot" / "manifest.json").read_text())["params"]
    assert params["jitter"] == 4 and params["views_per_call"] == 1        # the CPU: one render at a time
    assert (tmp_path / "shot" / "cam0" / "0001.png").is_file() and (tmp_path / "shot" / "cam0.mp4").is_file()
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", tmp_path / "s" / "calibration.json",
                             "--camera", "cam0", "--views-per-call", "3", "--out", tmp_path / "shot3")
    # both frames' 4 renders, 3 a call: the same frames
    assert code == 0 and "3 per model call" in " ".join(out.split()), err
    assert json.loads((tmp_path / "shot3" / "manifest.json").read_text())["params"]["views_per_call"] == 3
    for n in ("0000", "0001"):
        a, b = (read_exr(tmp_path / d / "cam0" / f"{n}.exr") for d in ("shot", "shot3"))
        assert np.abs(a - b).max() < 2e-3                  # half-float EXRs of float-equal renders
    code, out, err = run_cli(capsys, "render", "distil", tmp_path / "s", "--fit", tmp_path / "fit", "--teacher",
                             tmp_path / "m", "--out", tmp_path / "d", "--steps", "2", "--jitter", "1", "--device",
                             "cpu")
    assert code == 0, err                              # one model, no held-out cameras: the last state is kept
    summary = json.loads((tmp_path / "d" / "config.json").read_text())["summary"]
    assert summary["distilled"]["views"] == 2 * (6 + 6 * 2) and summary["best_holdout_psnr"] is None
    for renderer, renders in (("neural", 1), ("cgi", 4)):      # a student draws once; the CGI baseline anti-aliases
        code, out, err = run_cli(capsys, "render", "shot", tmp_path / "d", "--cameras",
                                 tmp_path / "s" / "calibration.json", "--camera", "cam0", "--renderer", renderer,
                                 "--out", tmp_path / f"shot_{renderer}")
        assert code == 0, err
        assert json.loads((tmp_path / f"shot_{renderer}" / "manifest.json").read_text())["params"]["jitter"] == renders


def _fails(capsys, out_dir, *args, match):
    code, out, err = run_cli(capsys, *args)
    msg = " ".join((out + err).split())
    assert code != 0 and match in msg, msg
    assert "Traceback" not in msg
    assert "/None" not in msg, "a bar of no length drawn before the refusal"
    assert not out_dir.exists(), "nothing may be written"


def test_bad_inputs_are_one_line_each_and_write_nothing(tmp_path, capsys, sphere_session):
    s, fit = sphere_session / "session", sphere_session / "fit"
    o = tmp_path / "out"
    train = ("render", "train", s, "--fit", fit, "--out", o, "--iterations", "1", "--device", "cpu")
    _fails(capsys, o, *train, "--holdout", "nope", match="--holdout nope: no such camera")
    _fails(capsys, o, *train, "--output-filter", "-1", match="output filter must be from 0 to 1/3")
    nocal = tmp_path / "nocal"
    shutil.copytree(s, nocal)
    (nocal / "calibration.json").unlink()
    _fails(capsys, o, "render", "train", nocal, "--fit", fit, "--out", o, match="no calibration.json")
    _fails(capsys, o, "texture", nocal, "--fit", fit, "--out", o, match="no calibration.json")
    # the folder `capture synth --out` wrote, given for its session one level down: the error names it
    for cmd in (("render", "train"), ("texture",), ("capture", "ingest"), ("fit",)):
        extra = ("--fit", fit) if cmd[0] in ("render", "texture") else ("--landmarks", fit) if cmd == ("fit",) else ()
        _fails(capsys, o, *cmd, sphere_session, *extra, "--out", o, match=f"the session is {s} (give that folder)")
    v, f, uv, fuv = uv_sphere(10, 20)
    other = _fit_folder(tmp_path / "other_topology", *uv_sphere(10, 20))
    (other / "uv_layout.npz").unlink()
    np.savez(other / "uv_layout.npz", uvs=uv_sphere()[2].numpy(), face_uvs=uv_sphere()[3].numpy())
    _fails(capsys, o, "render", "train", s, "--fit", other, "--out", o, match="a fit of another topology")
    v, f, uv, fuv = uv_sphere()
    away = _fit_folder(tmp_path / "other_actor", v + torch.tensor([0.0, 0.0, -20.0]), f, uv, fuv)
    _fails(capsys, o, "texture", s, "--fit", away, "--out", o, match="does not match the session's photos")
    _fails(capsys, o, "texture", s, "--fit", fit, "--out", o, "--size", "300", match="--size must be one of")
    if not torch.cuda.is_available():
        _fails(capsys, o, *train, "--device", "cuda", match="no CUDA device")
    _fails(capsys, o, *train, "--iterations", "0", match="--iterations must be >= 1")
    _fails(capsys, o, *train, "--members", "0", match="--members must be between 1 and")
    _fails(capsys, o, *train, "--snapshots", "9", match="--snapshots must be between 1 and")
    _fails(capsys, o, *train, "--snapshots", "2", match="--snapshots needs --holdout")


def test_resume_refuses_a_checkpoint_of_another_rig(tmp_path, capsys, sphere_session):
    s, fit = sphere_session / "session", sphere_session / "fit"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                           "--iterations", "2", "--device", "cpu")
    assert code == 0, err
    finer = _fit_folder(tmp_path / "finer", *uv_sphere(16, 32))
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", finer, "--out", tmp_path / "m", "--size", "64",
                             "--iterations", "4", "--device", "cpu", "--resume")
    assert code != 0 and "another rig" in " ".join((out + err).split())
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before      # the model is untouched
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                             "--iterations", "4", "--device", "cpu", "--resume")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["step"] == 4


def test_shot_bad_inputs(tmp_path, capsys, sphere_session):
    s, fit = sphere_session / "session", sphere_session / "fit"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                           "--iterations", "1", "--device", "cpu")
    assert code == 0, err
    o = tmp_path / "shot"
    shot = ("render", "shot", tmp_path / "m", "--cameras", s / "calibration.json", "--out", o)
    _fails(capsys, o, *shot, "--camera", "nope", match="--camera nope: not in")
    _fails(capsys, o, *shot, "--frames", "3:9", match="--frames 3:9: outside the 1 frames")
    _fails(capsys, o, *shot, "--renderer", "magic", match="--renderer must be one of")
    _fails(capsys, o, *shot, "--jitter", "0", match="--jitter must be between 1 and 16")
    _fails(capsys, o, *shot, "--views-per-call", "0", match="--views-per-call must be at least 1")
    _fails(capsys, o, *shot, "--anim", tmp_path, match="--anim needs --rig")
    _fails(capsys, o, "render", "shot", tmp_path, "--cameras", s / "calibration.json", "--out", o,
           match="not a neural double model folder")


def test_shot_driven_by_a_rig_and_an_animation(tmp_path, capsys, sphere_session):
    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 3)
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                             "--camera", "cam0", "--rig", tmp_path / "rig", "--anim", tmp_path / "anim",
                             "--frames", "1:3", "--out", tmp_path / "shot")
    assert code == 0, err
    from PIL import Image
    # files named by the animation's frame number (1, 2), so the chunks of a batch make one sequence
    a, b = (np.asarray(Image.open(tmp_path / "shot" / "cam0" / f"000{i}.png")).astype(float) for i in (1, 2))
    assert not (tmp_path / "shot" / "cam0" / "0000.png").exists() and (tmp_path / "shot" / "cam0.mp4").is_file()
    assert sorted(json.loads((tmp_path / "shot" / "manifest.json").read_text())["outputs"])[:2] == \
        ["cam0.mp4", "cam0/0001.exr"]
    assert np.abs(a - b).mean() > 0.5            # the sphere turned between the two frames
    _sphere_rig(tmp_path / "rig2", 10, 20)
    _fails(capsys, tmp_path / "shot2", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--rig", tmp_path / "rig2", "--anim", tmp_path / "anim", "--out", tmp_path / "shot2",
           match="a model from another rig")


def _exr_channel(path, name):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        for part in f.parts:
            if name in part.channels:
                return np.asarray(part.channels[name].pixels)
    raise KeyError(name)


def test_a_shot_with_a_shutter_is_blurred_along_the_animations_motion(tmp_path, capsys, sphere_session):
    """--shutter 180: the sphere moving 0.2 m (about 10 px) a frame across cam0 is smeared along its motion: the
    same coverage and centroid as the sharp frame (a centred shutter), a band of partial alpha across its middle
    row about 2 x 2.5 px wider; opened on the frame (--shutter-position start) its centroid moves on by a quarter
    of the frame's motion. The manifest records the shutter; bad values are refused in one line each."""
    from rigging.animation import Animation

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 3)
    t = np.array([[-0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    Animation(["root"], np.broadcast_to(np.eye(3), (3, 1, 3, 3)).copy(), t, 24.0, parents=np.array([-1])).save(
        tmp_path / "slide")
    write_manifest(tmp_path / "slide", "retarget", params={"actor_id": "virtual"},
                   outputs={"animation": "animation.npz"})
    shot = ("render", "shot", tmp_path / "m", "--cameras", s / "calibration.json", "--camera", "cam0", "--rig",
            tmp_path / "rig", "--anim", tmp_path / "slide", "--frames", "1:2", "--renderer", "cgi", "--jitter", "4")
    alpha, said = {}, {}
    for name, more in (("sharp", ()), ("centre", ("--shutter", "180")),
                       ("start", ("--shutter", "180", "--shutter-position", "start"))):
        code, out, err = run_cli(capsys, *shot, *more, "--out", tmp_path / name)
        assert code == 0, err
        alpha[name], said[name] = read_exr(tmp_path / name / "cam0" / "0001.exr")[..., 3], " ".join(out.split())
    params = json.loads((tmp_path / "centre" / "manifest.json").read_text())["params"]
    assert params["motion_blur"] == {"angle": 180.0, "samples": 8, "position": "centre"}
    assert json.loads((tmp_path / "sharp" / "manifest.json").read_text())["params"]["motion_blur"] is None
    assert "motion blur: 180-degree shutter (centre), 8 samples" in said["centre"]
    assert "motion blur" not in said["sharp"]
    x = np.arange(64)[None]

    def centroid(a):
        return float((a * x).sum() / a.sum())

    sharp, centre, start = alpha["sharp"], alpha["centre"], alpha["start"]
    assert abs(centre.sum() - sharp.sum()) < 0.01 * sharp.sum() and abs(centroid(centre) - centroid(sharp)) < 0.1
    assert 2.0 < centroid(start) - centroid(sharp) < 3.0
    row = int(np.argmax(sharp.sum(1)))

    def soft(a):
        return int(((a[row] > 0.03) & (a[row] < 0.97)).sum())

    assert soft(sharp) <= 4 and soft(centre) >= soft(sharp) + 3
    chunks = ("render", "shot", tmp_path / "m", "--cameras", s / "calibration.json", "--camera", "cam0", "--rig",
              tmp_path / "rig", "--anim", tmp_path / "slide", "--renderer", "cgi", "--jitter", "4", "--shutter", "180")
    for name, frames in (("first", "0:2"), ("second", "1:3")):       # a batch's chunks: frame 1 last, then first
        code, _, err = run_cli(capsys, *chunks, "--frames", frames, "--out", tmp_path / name)
        assert code == 0, err
    assert np.array_equal(read_exr(tmp_path / "first" / "cam0" / "0001.exr"),
                          read_exr(tmp_path / "second" / "cam0" / "0001.exr"))        # blurred from the clip alike
    assert np.array_equal(read_exr(tmp_path / "first" / "cam0" / "0001.exr"), read_exr(tmp_path / "centre" / "cam0"
                                                                                        / "0001.exr"))
    depth = {}
    for name, more in (("sharp_z", ()), ("blur_z", ("--shutter", "180"))):    # data passes: the frame's own time
        code, _, err = run_cli(capsys, *shot, *more, "--aovs", "depth", "--out", tmp_path / name)
        assert code == 0, err
        depth[name] = _exr_channel(tmp_path / name / "cam0" / "0001.exr", "Z")
    assert np.array_equal(depth["sharp_z"], depth["blur_z"])
    from capture.plate_io import plate_shutter_angle, sequence_fps  # the frames' headers: rate and exposure

    assert plate_shutter_angle(tmp_path / "centre" / "cam0" / "0001.exr") == (
        180.0, "its EXR header's expTime 0.0208333 s at 24 frames/s")
    assert sequence_fps(tmp_path / "sharp" / "cam0" / "0001.exr") == 24.0
    with pytest.raises(ValueError, match="declares no shutter angle"):
        plate_shutter_angle(tmp_path / "sharp" / "cam0" / "0001.exr")
    for bad, match in ((("--shutter", "400"), "--shutter"), (("--shutter-samples", "0"), "--shutter-samples"),
                       (("--shutter-position", "middle"), "must be one of centre, start, end")):
        _fails(capsys, tmp_path / "bad", *shot, *bad, "--out", tmp_path / "bad", match=match)


def test_a_shots_cryptomatte_layer_and_manifest_are_in_its_exrs(tmp_path, capsys, sphere_session, monkeypatch):
    """--aovs crypto: the CryptoParts layer (six ranks) in each frame's EXR and its declaration and manifest in the
    header, as a Cryptomatte keyer reads them: each label's matte pulled from it sums to the frame's coverage. The
    sphere is not on Anny's mesh (refused in one line); its faces are given two labels (upper, lower) here."""
    import OpenEXR

    import doppel.shot_stage as shot_stage
    from neural_render.cryptomatte import matte, name_hash

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 2)
    _fails(capsys, tmp_path / "r", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--aovs", "crypto", "--out", tmp_path / "r", match="--aovs crypto: the double is not on Anny's mesh")

    def halves(model, rig_dir=None):
        v = model.surface(model.fitted_verts.to(torch.float32))[0]
        up = (v[model.faces].mean(1)[:, 1] > v[:, 1].mean()).long()
        return up, ["lower", "upper"]

    monkeypatch.setattr(shot_stage, "face_labels", halves)
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                             "--camera", "cam0", "--aovs", "crypto", "--jitter", "1", "--out", tmp_path / "c")
    assert code == 0, err
    with OpenEXR.File(str(tmp_path / "c" / "cam0" / "0000.exr"), separate_channels=True) as f:
        ch = {k: c.pixels for k, c in f.channels().items()}
        header = dict(f.header())
    assert sorted(k for k in ch if k.startswith("Crypto")) == sorted(f"CryptoParts{g:02d}.{c}" for g in range(3)
                                                                       for c in "RGBA")
    key = f"{name_hash('CryptoParts'):08x}"[:7]
    assert header[f"cryptomatte/{key}/name"] == "CryptoParts"
    assert json.loads(header[f"cryptomatte/{key}/manifest"]) == {n: f"{name_hash(n):08x}" for n in ("lower", "upper")}
    lower, upper = matte(ch, "CryptoParts", ["lower"]), matte(ch, "CryptoParts", ["upper"])
    assert lower.sum() > 50 and upper.sum() > 50
    alpha = ch["A"].astype(np.float32)
    assert np.abs(lower + upper - alpha).mean() < 0.02                # the labels' mattes make up the coverage
    ys = np.nonzero(upper > 0.99)[0].mean(), np.nonzero(lower > 0.99)[0].mean()
    assert ys[0] < ys[1]                                              # upper above lower in the image
    from PIL import Image

    strip = np.asarray(Image.open(tmp_path / "c" / "cam0.passes.png"))       # colour, cryptomatte
    assert strip.shape[1] == 2 * alpha.shape[1] and strip[:, alpha.shape[1]:][alpha > 0.5].mean() > 30


def test_a_double_on_another_mesh_gets_mattes_of_its_rigs_joints(tmp_path, capsys, sphere_session):
    """A double not on Anny's mesh, shot with --rig / --anim: the Cryptomatte's labels are the rig's joints (each
    face the joint that moves it most) and the part mattes follow the joints' names (a "head" joint: the head
    matte); without a rig both are refused in one line."""
    import OpenEXR

    from neural_render.cryptomatte import matte
    from rigging import Rig

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 2)
    v, f, uv, fuv = uv_sphere()
    top = (v[:, 1] > 0.1).numpy()
    Rig(joint_names=["spine", "head"], parents=np.array([-1, 0]), bind_matrices=np.stack([np.eye(4)] * 2),
        vertices=v.numpy(), faces=f.numpy(), skin_indices=top.astype(np.int64)[:, None],
        skin_weights=np.ones((len(v), 1)), uvs=uv.numpy(), face_uvs=fuv.numpy()).save(
        tmp_path / "rig2", params={"actor_id": "virtual"})
    from rigging.animation import Animation

    Animation(["spine"], np.broadcast_to(np.eye(3), (2, 1, 3, 3)).copy(), np.zeros((2, 3)), 24.0,
              parents=np.array([-1])).save(tmp_path / "anim2")
    write_manifest(tmp_path / "anim2", "retarget", params={"actor_id": "virtual"},
                   outputs={"animation": "animation.npz"})
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                             "--camera", "cam0", "--rig", tmp_path / "rig2", "--anim", tmp_path / "anim2",
                             "--aovs", "crypto,parts", "--jitter", "1", "--out", tmp_path / "j")
    assert code == 0, err
    with OpenEXR.File(str(tmp_path / "j" / "cam0" / "0000.exr"), separate_channels=True) as fh:
        ch = {k: c.pixels for k, c in fh.channels().items()}
        manifest = next(json.loads(x) for k, x in fh.header().items() if k.endswith("/manifest"))
    assert sorted(manifest) == ["head", "spine"]
    head, spine, alpha = matte(ch, "CryptoParts", ["head"]), matte(ch, "CryptoParts", ["spine"]), ch["A"]
    assert head.sum() > 50 and spine.sum() > 50 and np.abs(head + spine - alpha).mean() < 0.02
    assert np.nonzero(head > 0.99)[0].mean() < np.nonzero(spine > 0.99)[0].mean()      # the head above
    assert np.abs(ch["matte.head"] - head).mean() < 0.02 and np.abs(ch["matte.body"] - spine).mean() < 0.02
    for aov in ("crypto", "parts"):
        _fails(capsys, tmp_path / "n", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
               "--aovs", aov, "--out", tmp_path / "n", match="give --rig and --anim (its joints label the faces)")


def test_a_shot_writes_render_passes_into_its_exrs_and_chunks_agree_at_their_edges(tmp_path, capsys,
                                                                                   sphere_session):
    """--aovs: depth, position, normal, UV and motion vectors in each frame's EXR (float32, beside the half-float
    colour). Frame 2 drawn last in one shot (1:3) and first in another (2:4) has the same passes: the motion at a
    shot's ends comes from the clip's neighbouring frames, so a batch's chunks join without a seam."""
    import OpenEXR

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 4)
    for name, frames in (("a", "1:3"), ("b", "2:4")):
        code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                                 "--camera", "cam0", "--rig", tmp_path / "rig", "--anim", tmp_path / "anim",
                                 "--frames", frames, "--aovs", "all", "--jitter", "1", "--out", tmp_path / name)
        assert code == 0, err
        assert "passes depth, position, normal, uv, motion in the EXRs" in out
    ch = {}
    for name in ("a", "b"):
        with OpenEXR.File(str(tmp_path / name / "cam0" / "0002.exr"), separate_channels=True) as f:
            ch[name] = {k: c.pixels for k, c in f.channels().items()}
    assert sorted(ch["a"]) == sorted(["R", "G", "B", "A", "Z", "P.X", "P.Y", "P.Z", "N.X", "N.Y", "N.Z", "uv.u",
                                      "uv.v", "forward.u", "forward.v", "backward.u", "backward.v"])
    assert ch["a"]["Z"].dtype == np.float32 and ch["a"]["R"].dtype == np.float16
    for k in ch["a"]:
        assert np.array_equal(ch["a"][k], ch["b"][k]), k
    hit = ch["a"]["Z"] < 1e9
    assert hit.mean() > 0.05 and np.abs(ch["a"]["forward.u"][hit]).max() > 0.1     # the sphere spins
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["render"]["aovs"]["depth"] == ["Z"] and manifest["render"]["aovs"]["motion"][0] == "forward.u"
    from PIL import Image

    strip = np.asarray(Image.open(tmp_path / "a" / "cam0.passes.png"))     # colour, depth, normal, uv, motion
    with OpenEXR.File(str(tmp_path / "a" / "cam0" / "0001.exr"), separate_channels=True) as f:   # its first frame
        hit = f.channels()["Z"].pixels < 1e9
    h, w = hit.shape
    assert strip.shape == (h, 5 * w, 3) and "cam0.passes.png" in manifest["outputs"]
    tiles = [strip[:, k * w:(k + 1) * w].astype(float) for k in range(5)]
    assert all(t[hit].mean() > 20 for t in tiles[1:]) and all(t[~hit].max() == 0 for t in tiles[1:4])
    _fails(capsys, tmp_path / "c", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--aovs", "depth,albedo", "--out", tmp_path / "c", match="--aovs: unknown pass albedo")
    _fails(capsys, tmp_path / "d", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--aovs", "parts", "--out", tmp_path / "d", match="--aovs parts: the double is not on Anny's mesh")


def test_a_shot_through_a_distorted_lens_lines_up_with_the_lens(tmp_path, capsys, sphere_session):
    """A calibrated camera with barrel distortion: the shot's frames are its lens's image, drawn with overscan and
    distorted; --lens undistorted draws the same K without distortion, as every shot did before. The first, seen
    through the lens, is the second taken through the camera's redistort ST-map (capture.st_maps, OpenCV's model)."""
    from dataclasses import replace

    import cv2
    import OpenEXR
    import torch

    from capture.calibration_io import read_calibration, write_doppel_json
    from capture.st_maps import from_st, redistort_stmap

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 2)
    def close_up(c):        # the sphere's edge far from the image's centre, where the lens bends most
        K = c.K.clone()
        K[:2, :2] *= 1.25
        return replace(c, K=K, dist=torch.tensor([-0.25, 0.02, 0.0, 0.0, 0.0], dtype=c.dtype))

    bent = [close_up(c) for c in read_calibration(s / "calibration.json")]
    write_doppel_json(tmp_path / "lens.json", bent)
    passes = {}
    for lens in ("distorted", "undistorted"):
        code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", tmp_path / "lens.json",
                                 "--camera", "cam0", "--frames", "0:1", "--aovs", "depth", "--jitter", "1",
                                 "--lens", lens, "--size", "64", "--out", tmp_path / lens)
        assert code == 0, err
        assert ("through the cameras' lens distortion (drawn at" in out) == (lens == "distorted")
        with OpenEXR.File(str(tmp_path / lens / "cam0" / "0000.exr"), separate_channels=True) as f:
            passes[lens] = {k: c.pixels.astype(np.float32) for k, c in f.channels().items()}
    summary = json.loads((tmp_path / "distorted" / "manifest.json").read_text())["render"]
    W, H = summary["size"]
    assert summary["lens"] == "distorted" and summary["overscan"][0] > W and passes["distorted"]["Z"].shape == (H, W)
    cam = next(c for c in bent if c.name == "cam0")
    cam = replace(cam, K=cam.K * torch.tensor([[W / cam.width], [H / cam.height], [1.0]], dtype=cam.dtype),
                  width=W, height=H)
    flat = (passes["undistorted"]["Z"] < 1e9).astype(np.float32)
    x, y = from_st(redistort_stmap(cam), W, H)                      # nearest: a mask's pixels, not a blend
    expected = cv2.remap(flat, x, y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0.5
    got = passes["distorted"]["Z"] < 1e9
    assert 0.05 < got.mean() < 0.95
    assert (got != expected).mean() < 0.002                                  # (0 when written)
    assert (got != (flat > 0.5)).mean() > 0.01                              # the lens moved the sphere's edge
    alpha = passes["distorted"]["A"] > 0.5
    assert (alpha != got).mean() < 0.02                                      # the colour went through the lens too


def test_a_shots_movie_is_encoded_as_its_frames_are_drawn(tmp_path, capsys, sphere_session, monkeypatch):
    """`render shot` kept every frame of a camera's movie in memory until its last frame (a 1024 px shot: 3 MB a
    frame, 7.5 GB for 100 s): the movie now takes each frame as it is drawn and written."""
    import mocap_retarget.preview as preview
    from doppel.shot_checkpoint import checkpoint_folder

    s = _model_rig_and_spin(tmp_path, capsys, sphere_session, 6)
    written_when_encoded = []
    encode = preview.write_disclosed_mp4

    def spy(path, images, fps, disclose):
        def watched():
            for im in images:
                frames = checkpoint_folder(tmp_path / "shot") / "shot" / path.stem   # written there as they come
                written_when_encoded.append(len(list(frames.glob("*.png"))))
                yield im
        return encode(path, watched(), fps, disclose)

    monkeypatch.setattr(preview, "write_disclosed_mp4", spy)
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                             "--camera", "cam0", "--rig", tmp_path / "rig", "--anim", tmp_path / "anim",
                             "--out", tmp_path / "shot")
    assert code == 0, err
    assert written_when_encoded == [1, 2, 3, 4, 5, 6]        # frame k encoded once k frames were written, no later
    assert (tmp_path / "shot" / "cam0.mp4").stat().st_size > 0


def test_a_shot_draws_the_animations_blendshape_weights(tmp_path, capsys, sphere_session):
    """The rig's blendshapes (a face's expressions) move with the animation's weights, as in its FBX/USD/glTF
    export; a weight curve naming a blendshape the rig does not have is refused in one line."""
    s, fit = sphere_session / "session", sphere_session / "fit"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                           "--iterations", "1", "--device", "cpu")
    assert code == 0, err
    _sphere_rig(tmp_path / "rig")
    _spin_animation(tmp_path / "anim", 2, spin=0.0, blendshapes={"squash": np.array([0.0, 1.0])})
    code, _, err = run_cli(capsys, "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
                           "--camera", "cam0", "--rig", tmp_path / "rig", "--anim", tmp_path / "anim",
                           "--renderer", "cgi", "--out", tmp_path / "shot")
    assert code == 0, err
    from PIL import Image
    a, b = (np.asarray(Image.open(tmp_path / "shot" / "cam0" / f"000{i}.png")).astype(float) for i in (0, 1))
    rows = [np.flatnonzero(np.abs(im - im[0, 0]).sum(-1).max(1) > 30) for im in (a, b)]
    assert len(rows[1]) < 0.75 * len(rows[0])    # squashed: the sphere's image lost a quarter of its height
    _spin_animation(tmp_path / "anim2", 2, blendshapes={"jawOpen": np.array([0.0, 1.0])})
    _fails(capsys, tmp_path / "shot2", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--rig", tmp_path / "rig", "--anim", tmp_path / "anim2", "--out", tmp_path / "shot2",
           match="blendshapes ['jawOpen'] are not in the rig")


def test_shot_frames_of_a_real_actor_are_watermarked_and_signed(tmp_path, capsys, sphere_session):
    from tests.doppel.sphere_double import jane_model

    ws, who = jane_model(tmp_path, capsys, sphere_session)
    code, _, err = run_cli(capsys, "render", "shot", ws / "m", "--cameras", ws / "session" / "calibration.json",
                           "--camera", "cam0", "--out", ws / "shot", *who)
    assert code == 0, err
    assert (ws / "shot" / "cam0" / "0000.exr.c2pa").is_file()
    code, out, err = run_cli(capsys, "verify", ws / "shot" / "cam0" / "0000.png", "-W", ws)
    assert code == 0 and "actor jane" in out, out + err
    o = ws / "shot2"
    _fails(capsys, o, "render", "shot", ws / "m", "--cameras", ws / "session" / "calibration.json", "--out", o,
           "--no-provenance", *who, match="--no-provenance is only allowed for the virtual actor")


def test_render_train_advises_the_silhouette_term_for_a_fit_made_without_it(tmp_path, capsys, sphere_session):
    from doppel.render_stage import fit_advice

    fit = tmp_path / "fit"
    shutil.copytree(sphere_session / "fit", fit)
    assert fit_advice(fit) is None                                     # no metrics: nothing to say
    (fit / "metrics.json").write_text(json.dumps({"silhouettes": True}))
    assert fit_advice(fit) is None
    (fit / "metrics.json").write_text("{not json")
    assert fit_advice(fit) is None
    (fit / "metrics.json").write_text(json.dumps({"silhouettes": False}))
    assert "--silhouette-weight" in fit_advice(fit)
    code, out, err = run_cli(capsys, "render", "train", sphere_session / "session", "--fit", fit, "--out",
                             tmp_path / "model", "--size", "64", "--iterations", "1", "--device", "cpu")
    assert code == 0, err
    assert "--silhouette-weight" in " ".join(out.split())
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert "silhouette" in json.dumps(manifest)


def test_two_members_train_at_once_and_shots_draw_their_mean(tmp_path, capsys, sphere_session):
    from neural_render.ensemble import NeuralEnsemble, load_double

    s, fit = sphere_session / "session", sphere_session / "fit"
    m = tmp_path / "model"
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", m, "--holdout", "cam3", "--size",
                             "64", "--iterations", "6", "--device", "cpu", "--members", "2")
    assert code == 0, err
    text = " ".join(out.split())
    assert "2 members (held-out PSNR" in text and "is the ensemble's" in text
    meta = json.loads((m / "config.json").read_text())
    assert meta["members"] == ["members/1"] and len(meta["summary"]["member_holdout_psnr"]) == 2
    assert (m / "members" / "1" / "model.safetensors").is_file() and (m / "holdout.png").is_file()
    assert not (tmp_path / ".model.checkpoint").exists()
    manifest = json.loads((m / "manifest.json").read_text())
    assert "members/1/model" in manifest["outputs"] and manifest["params"]["members"] == 2
    model, _ = load_double(m)
    assert isinstance(model, NeuralEnsemble)
    a = model.members[0].texture.level0
    assert not torch.equal(a, model.members[1].texture.level0)          # seeds 0 and 1: two different models
    shot = tmp_path / "shot"
    code, out, err = run_cli(capsys, "render", "shot", m, "--cameras", s / "calibration.json", "--camera", "cam1",
                             "--size", "64", "--out", shot)
    assert code == 0, err
    from PIL import Image
    png = np.asarray(Image.open(shot / "cam1" / "0000.png"))
    assert 0.05 < (png[..., 3] > 127).mean() < 0.9
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", m, "--holdout", "cam3", "--size",
                             "64", "--iterations", "8", "--device", "cpu", "--members", "2", "--resume")
    assert code == 0, err
    for sub in (m, m / "members" / "1"):                                 # every member continued from step 6
        assert json.loads((sub / "config.json").read_text())["training"]["step"] == 8


def test_each_member_keeps_its_snapshots_and_the_folder_draws_them_all(tmp_path, sphere_session):
    from doppel.render_ensemble import train_ensemble
    from doppel.render_stage import TrainRequest
    from doppel.shot_stage import model_weights
    from neural_render.ensemble import NeuralEnsemble, load_double

    s, fit = sphere_session / "session", sphere_session / "fit"
    m = tmp_path / "model"
    req = TrainRequest(s, fit, m, ["cam3"], 64, iterations=8, members=2,
                       options={"snapshots": 2, "eval_every": 2, "patience": 10})
    summary = train_ensemble(req, m)
    meta = json.loads((m / "config.json").read_text())
    assert meta["members"] == ["snapshots/1", "members/1"]
    one = json.loads((m / "members" / "1" / "config.json").read_text())
    assert one["members"] == ["snapshots/1"] and len(one["summary"]["snapshots"]) == 1
    assert one["training"]["best_holdout_psnr"] == one["summary"]["single_state_holdout_psnr"]   # resumes from it
    snap = one["summary"]["snapshots"][0]
    assert snap["step"] != one["summary"]["best_step"] and snap["holdout_psnr"] <= one["summary"][
        "single_state_holdout_psnr"]
    model, _ = load_double(m)
    assert isinstance(model, NeuralEnsemble) and len(model) == 4     # two members, two states each
    assert [p.relative_to(m).as_posix() for p in model_weights(m)] == [
        "model.safetensors", "snapshots/1/model.safetensors", "members/1/model.safetensors",
        "members/1/snapshots/1/model.safetensors"]
    manifest = json.loads((m / "manifest.json").read_text())
    assert {"snapshots/1/model", "members/1/snapshots/1/model"} <= set(manifest["outputs"])
    assert summary["best_holdout_psnr"] is not None and len(summary["member_holdout_psnr"]) == 2



def test_a_shot_movie_is_marked_as_it_is_encoded(tmp_path, monkeypatch):
    """write_disclosed_mp4 with a Discloser: the movie's frames (padded to 16 px) are watermarked as they are
    encoded and the file signed, never decoded and re-encoded for the mark; a plain callable still gets the file."""
    from assets import disclosure
    from assets.disclosure import Discloser, DisclosureContext
    from assets.media_verify import verify_file
    from mocap_retarget.preview import write_disclosed_mp4
    from tests.assets.provenance_helpers import textured, workspace_with_actor

    ws, consent = workspace_with_actor(tmp_path / "ws")
    frames = [textured(i, 180, 250) for i in range(6)]

    def second_encode(*a, **k):
        raise AssertionError("the movie was decoded and re-encoded to be marked")

    monkeypatch.setattr(disclosure, "_rewrite_video", second_encode)
    ctx = DisclosureContext(ws, "jane", consent.id, "Film", "render", command="test")
    write_disclosed_mp4(tmp_path / "cam0.mp4", frames, 24.0, Discloser(ctx))
    rep = verify_file(tmp_path / "cam0.mp4", ws)
    assert rep.c2pa.state == "trusted" and rep.watermark.found and rep.record.actor == "jane"
    seen = []
    write_disclosed_mp4(tmp_path / "cam1.mp4", frames, 24.0, seen.append)
    assert seen == [tmp_path / "cam1.mp4"]


def test_render_train_says_when_it_recovered_from_a_divergence(tmp_path):
    """The closing lines name the steps where training diverged and was rolled back (summary.divergences)."""
    from rich.console import Console

    from doppel.commands.render import _print_training

    console = Console(record=True, width=200)
    s = {"steps": 2000, "stopped": "iterations", "best_holdout_psnr": None, "best_step": 2000, "size_note": None,
         "divergences": [{"step": 1300, "why": "training loss 0.27"}]}
    _print_training(console, s, tmp_path / "m")
    text = console.export_text()
    assert "diverged and recovered at step(s) 1300" in text and "best held-out PSNR n/a at step 2000" in text
    _print_training(console := Console(record=True, width=200), {**s, "divergences": []}, tmp_path / "m")
    assert "diverged" not in console.export_text()


def test_distil_turns_two_members_into_one_model_and_refuses_another_rig(tmp_path, capsys, sphere_session):
    from doppel.render_distil import STUDENT_OUTPUT_FILTER
    from neural_render.ensemble import load_double
    from neural_render.neural_double import NeuralDouble

    s, fit = sphere_session / "session", sphere_session / "fit"
    m, d = tmp_path / "model", tmp_path / "student"
    code, out, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", m, "--holdout", "cam3", "--size",
                             "64", "--iterations", "6", "--device", "cpu", "--members", "2")
    assert code == 0, err
    code, out, err = run_cli(capsys, "render", "distil", s, "--fit", fit, "--teacher", m, "--out", d, "--steps", "4",
                             "--jitter", "2", "--device", "cpu")
    assert code == 0, err
    text = " ".join(out.split())
    assert "render distil: 4 steps" in text and "teacher views" in text
    model, meta = load_double(d)
    assert isinstance(model, NeuralDouble) and "members" not in meta     # one model, drawn once
    assert model.config.output_filter == STUDENT_OUTPUT_FILTER > 0         # drawn through the filter it learnt with
    info = meta["summary"]["distilled"]
    assert info["views"] == 7 + 7 * 2 and info["jitter"] == 2            # ring of 7 training cameras: 7 joins x 2
    assert meta["summary"]["holdout"] == ["cam3"] and (d / "holdout.png").is_file()
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["stage"] == "render_model" and "teacher_model" in manifest["inputs"]
    code, out, err = run_cli(capsys, "render", "distil", s, "--fit", fit, "--teacher", m, "--out", tmp_path / "ss1",
                             "--steps", "2", "--jitter", "1", "--supersample", "1", "--output-filter", "0",
                             "--device", "cpu")
    assert code == 0, err
    one, meta = load_double(tmp_path / "ss1")
    assert one.config.supersample == 1 and model.config.supersample == 2 and one.config.output_filter == 0
    code, out, err = run_cli(capsys, "render", "shot", tmp_path / "ss1", "--cameras", s / "calibration.json",
                             "--camera", "cam0", "--out", tmp_path / "shot_ss1")
    assert code == 0, err                            # a student without the filter is still drawn once
    assert json.loads((tmp_path / "shot_ss1" / "manifest.json").read_text())["params"]["jitter"] == 1
    assert meta["summary"]["distilled"]["supersample"] == 1
    o = tmp_path / "refused"
    _fails(capsys, o, "render", "distil", s, "--fit", fit, "--teacher", m, "--out", o, "--supersample", "3",
           match="--supersample must be 1, 2 or 4")
    _fails(capsys, o, "render", "distil", s, "--fit", fit, "--teacher", m, "--out", o, "--output-filter", "0.5",
           match="output filter must be from 0 to 1/3")
    other = _fit_folder(tmp_path / "other_rig", *uv_sphere(10, 20))
    _fails(capsys, o, "render", "distil", s, "--fit", other, "--teacher", m, "--out", o, "--device", "cpu",
           match="was trained on another rig / topology than --fit")
    _fails(capsys, o, "render", "distil", s, "--fit", fit, "--teacher", fit, "--out", o, "--device", "cpu",
           match="not a `doppel render train` model folder")
    _fails(capsys, o, "render", "distil", s, "--fit", fit, "--teacher", m, "--out", o, "--steps", "0",
           match="--steps must be >= 1")


def _interrupted_at_the_fifth_call(step):
    """``step`` (an optimisation step function) that is interrupted as by Ctrl-C on its fifth call."""
    from doppel.cli import Interrupted

    calls = []

    def stepped(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise Interrupted(2)
        return step(*a, **k)

    return stepped


def test_an_interrupted_training_says_how_to_resume_and_keeps_its_curve(tmp_path, capsys, sphere_session,
                                                                       monkeypatch):
    """Ctrl-C during `render train`: the line names the checkpoint kept and --resume (it said only "nothing
    written"); the resumed model's history.json holds the whole curve, its seconds continued (the interrupted
    run's evaluations were lost: the checkpoint saved the history of earlier runs only)."""
    import dataclasses

    import neural_render.training as training

    @dataclasses.dataclass
    class Frequent(training.TrainConfig):
        eval_every: int = 2
        checkpoint_every: int = 2

    monkeypatch.setattr(training, "TrainConfig", Frequent)
    monkeypatch.setattr(training, "_step", _interrupted_at_the_fifth_call(training._step))
    s, fit, m = sphere_session / "session", sphere_session / "fit", tmp_path / "m"
    train = ("render", "train", s, "--fit", fit, "--out", m, "--size", "64", "--iterations", "8", "--device", "cpu")
    code, out, err = run_cli(capsys, *train)
    said = " ".join((out + err).split())
    assert code == 130 and not m.exists()
    assert "the checkpoint of step 4 is kept in" in said and "--resume continues from it" in said
    from core.leftovers import owners_of  # whose likeness it holds, for a consent's purge

    owners = owners_of(tmp_path / ".m.checkpoint")
    assert owners and {o["actor"] for o in owners} <= {"virtual", "unknown"}, owners
    code, _, err = run_cli(capsys, *train, "--resume")
    assert code == 0, err
    history = json.loads((m / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6, 8]
    seconds = [h["seconds"] for h in history]
    assert seconds == sorted(seconds) and seconds[2] >= seconds[1]


def test_an_interrupted_distillation_resumes_to_the_uninterrupted_runs_model(tmp_path, capsys, sphere_session,
                                                                              monkeypatch):
    """`render distil` had no --resume: an interrupted run lost its steps. Its checkpoint (every evaluation) now
    takes a resumed run to the very model the uninterrupted run makes; a checkpoint of other settings, or of
    `render distil` given to `render train --resume`, is refused."""
    import dataclasses

    from safetensors.torch import load_file

    import neural_render.distill as distill

    @dataclasses.dataclass
    class Frequent(distill.DistilConfig):
        eval_every: int = 2
        checkpoint_every: int = 2

    monkeypatch.setattr(distill, "DistilConfig", Frequent)
    s, fit, m = sphere_session / "session", sphere_session / "fit", tmp_path / "m"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", m, "--holdout", "cam3", "--size",
                           "64", "--iterations", "4", "--device", "cpu", "--members", "2")
    assert code == 0, err
    cmd = ("render", "distil", s, "--fit", fit, "--teacher", m, "--steps", "8", "--jitter", "2", "--device", "cpu")
    code, _, err = run_cli(capsys, *cmd, "--out", tmp_path / "whole")
    assert code == 0, err
    monkeypatch.setattr(distill, "_distil_step", _interrupted_at_the_fifth_call(distill._distil_step))
    code, out, err = run_cli(capsys, *cmd, "--out", tmp_path / "d")
    said = " ".join((out + err).split())
    assert code == 130 and not (tmp_path / "d").exists()
    assert "the checkpoint of step 4 is kept in" in said and "--resume continues from it" in said
    _fails(capsys, tmp_path / "d", *cmd[:-4], "--jitter", "1", "--device", "cpu", "--out", tmp_path / "d", "--resume",
           match="was made with --jitter 2 (now 1); resume with its settings")
    _fails(capsys, tmp_path / "d", "render", "train", s, "--fit", fit, "--out", tmp_path / "d", "--holdout", "cam3",
           "--size", "64", "--iterations", "4", "--device", "cpu", "--resume",
           match="is a `doppel render distil` checkpoint")
    code, _, err = run_cli(capsys, *cmd, "--out", tmp_path / "d", "--resume")
    assert code == 0, err
    assert not (tmp_path / ".d.checkpoint").exists()             # removed once the model folder is in place
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "d" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((tmp_path / "d" / "history.json").read_text())
    assert [h["step"] for h in history] == [0, 2, 4, 6, 8]
    assert history == [{**h, "seconds": h2["seconds"]} for h, h2 in zip(
        json.loads((tmp_path / "whole" / "history.json").read_text()), history, strict=True)]


def test_a_shot_says_when_the_double_is_out_of_view_and_recentre_brings_it_back(tmp_path, capsys, sphere_session):
    """A retargeted clip starts where its mocap stage put it: the shot through the capture's cameras was empty
    (alpha 0 everywhere) and said nothing. Now each camera that misses the double is named, with how far the
    first frame stands from the actor's place; --recentre turns and moves the clip onto it (here the image of the
    unmoved sphere, which a clip 8.6 m away and turned by 90 degrees gives back)."""
    from PIL import Image

    from rigging.animation import Animation

    s, fit = sphere_session / "session", sphere_session / "fit"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                           "--iterations", "1", "--device", "cpu")
    assert code == 0, err
    _sphere_rig(tmp_path / "rig")
    for name, turn, away in (("still", 0.0, (0.0, 0.0, 0.0)), ("far", np.pi / 2, (5.0, 0.0, 7.0))):
        c, sn = np.cos(turn), np.sin(turn)
        R = np.tile(np.array([[c, 0, sn], [0, 1, 0], [-sn, 0, c]]), (2, 1, 1, 1))
        walk = np.array([away, np.add(away, (0.0, 0.0, 0.1))])        # frame 1 a step (10 cm) further along
        Animation(["root"], R, walk, 24.0, parents=np.array([-1])).save(tmp_path / name)
        write_manifest(tmp_path / name, "retarget", params={"actor_id": "virtual"},
                       outputs={"animation": "animation.npz"})
    shot = ("render", "shot", tmp_path / "m", "--cameras", s / "calibration.json", "--camera", "cam0", "--rig",
            tmp_path / "rig", "--renderer", "cgi")
    code, out, err = run_cli(capsys, *shot, "--anim", tmp_path / "far", "--out", tmp_path / "far_shot")
    said = " ".join(out.split())
    assert code == 0, err
    assert "camera cam0 shows none of the double in every frame" in said and "cuts" not in said
    assert "first frame stands 8.60 m from where the fitted double stood" in said and "--recentre" in said
    code, out, err = run_cli(capsys, *shot, "--anim", tmp_path / "far", "--recentre", "--out", tmp_path / "back")
    assert code == 0, err and "shows none" not in out
    code, out, err = run_cli(capsys, *shot, "--anim", tmp_path / "still", "--out", tmp_path / "still_shot")
    assert code == 0, err and "shows none" not in out
    back, still = (np.asarray(Image.open(tmp_path / d / "cam0" / "0000.png")).astype(float)
                   for d in ("back", "still_shot"))
    assert np.abs(back - still).mean() < 1.0 and np.abs(still - still[0, 0]).sum(-1).max() > 50
    # frame 0 is the reference whatever --frames renders: a chunk of frame 1 alone is the whole shot's frame 1
    code, _, err = run_cli(capsys, *shot, "--anim", tmp_path / "far", "--recentre", "--frames", "1:2", "--out",
                           tmp_path / "chunk")
    assert code == 0, err
    whole, chunk = (np.asarray(Image.open(p)).astype(float)
                    for p in (tmp_path / "back" / "cam0" / "0001.png", tmp_path / "chunk" / "cam0" / "0001.png"))
    assert np.abs(whole - chunk).max() == 0 and np.abs(whole - back).mean() > 0.5
    # a camera that frames the double whole in the first frame says when it leaves the frame in part
    Animation(["root"], np.tile(np.eye(3), (2, 1, 1, 1)), np.array([[0.0, 0.0, 0.0], [0.0, 0.9, 0.0]]), 24.0,
              parents=np.array([-1])).save(tmp_path / "rise")
    write_manifest(tmp_path / "rise", "retarget", params={"actor_id": "virtual"},
                   outputs={"animation": "animation.npz"})
    code, out, err = run_cli(capsys, *shot, "--anim", tmp_path / "rise", "--out", tmp_path / "rise_shot")
    assert code == 0, err
    assert "camera cam0 cuts the double at the image's edge in 1 of 2 frames (1)" in " ".join(out.split())
    _fails(capsys, tmp_path / "x", "render", "shot", tmp_path / "m", "--cameras", s / "calibration.json",
           "--recentre", "--out", tmp_path / "x", match="--recentre needs --rig and --anim")


def test_frames_ranges_are_parsed_and_an_empty_one_is_named():
    from doppel.shot_stage import parse_frames

    assert parse_frames("2:5", 10) == range(2, 5) and parse_frames(":3", 10) == range(0, 3)
    assert parse_frames("7", 10) == range(7, 8) and parse_frames(None, 4) == range(4)
    with pytest.raises(ValueError, match=r"--frames 5:2: no frame \(the end, 2, is not after the start, 5"):
        parse_frames("5:2", 10)
    with pytest.raises(ValueError, match="--frames 8:12: outside the 10 frames available"):
        parse_frames("8:12", 10)
    with pytest.raises(ValueError, match="--frames must be A:B"):
        parse_frames("a:b", 10)


def test_joint_names_map_to_body_parts():
    from doppel.shot_stage import part_of_joint
    from neural_render.aovs import PARTS

    names = {"head": ["head", "jaw", "left_eye_smplhf", "mixamorig:Neck", "neck", "skull", "global"],
             "hands": ["left_wrist", "right_index3", "mixamorig:LeftHandThumb2", "hand_r", "pinky_02_l"],
             "feet": ["left_ankle", "right_foot", "mixamorig:LeftToeBase", "ball_l"],
             "body": ["pelvis", "spine3", "left_collar", "mixamorig:RightArm", "root", "left_knee"]}
    for part, joints in names.items():
        assert [PARTS[part_of_joint(j)] for j in joints] == [part] * len(joints), part
