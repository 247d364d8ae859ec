"""A tiny neural double for the render CLI tests: a textured sphere photographed by 8 cameras at 64 px, its fit,
a one-joint rig of it and animations spinning it (`test_render_cli.py`, `test_shot_resume.py`)."""

import json

import numpy as np

from capture.session import write_session
from core.meshio import write_ply
from core.storage import write_manifest
from tests.cli_runner import run_cli
from tests.neural_render.scenes import albedo_texture, photograph, ring_cameras, uv_sphere


def fit_folder(path, verts, faces, uvs, face_uvs, later=(), actor="virtual"):
    path.mkdir(parents=True)
    (path / "params.json").write_text(json.dumps({"model": "sphere", "source": "test", "shape": {}}))
    write_ply(path / "fit_mesh.ply", verts.numpy(), faces.numpy())
    np.savez(path / "uv_layout.npz", uvs=uvs.numpy(), face_uvs=face_uvs.numpy())
    outputs = {"params": "params.json", "fit_mesh": "fit_mesh.ply"}
    for frame, v in later:
        (path / "frames" / frame).mkdir(parents=True)
        write_ply(path / "frames" / frame / "fit_mesh.ply", v.numpy(), faces.numpy())
    write_manifest(path, "fit", params={"actor_id": actor}, outputs=outputs)
    return path


def sphere_session(root):
    """root/session (8 ring cameras at 64 px of the textured sphere) and root/fit; returns root."""
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(8, 64)
    imgs, _ = photograph(v, f, uv, fuv, cams, albedo_texture(64))
    write_session(root / "session", list(cams), {c.name: imgs[i].numpy() for i, c in enumerate(cams)})
    fit_folder(root / "fit", v, f, uv, fuv)
    return root


def sphere_rig(path, n_lat=12, n_lon=24):
    """A one-joint rig of the test sphere (every vertex bound to the root) with one blendshape ("squash": the
    sphere flattened to half its height), and an animation spinning it."""
    from rigging import Rig

    v, f, uv, fuv = uv_sphere(n_lat, n_lon)
    squash = np.zeros((1, len(v), 3), np.float32)
    squash[0, :, 1] = -0.5 * v.numpy()[:, 1]
    rig = Rig(joint_names=["root"], parents=np.array([-1]), bind_matrices=np.eye(4)[None], vertices=v.numpy(),
              faces=f.numpy(), skin_indices=np.zeros((len(v), 1), np.int64), skin_weights=np.ones((len(v), 1)),
              uvs=uv.numpy(), face_uvs=fuv.numpy(), blendshape_names=["squash"], blendshape_deltas=squash)
    rig.save(path, params={"actor_id": "virtual"})
    return rig


def spin_animation(path, frames=3, spin=0.6, blendshapes=None):
    """blendshapes: {name: (frames,) weights} the animation carries."""
    from rigging.animation import Animation

    a = np.linspace(0, spin, frames)
    R = np.stack([[[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]] for t in a])[:, None]
    names = list(blendshapes or {})
    w = np.stack([blendshapes[n] for n in names], 1) if names else None
    Animation(["root"], R, np.zeros((frames, 3)), 24.0, parents=np.array([-1]), blendshape_names=names,
              blendshape_weights=w).save(path)
    write_manifest(path, "retarget", params={"actor_id": "virtual"}, outputs={"animation": "animation.npz"})


def model_rig_and_spin(tmp_path, capsys, sphere_session, frames):
    """A one-step model of the sphere session (tmp_path/m), its rig (tmp_path/rig) and a spin of ``frames`` frames
    (tmp_path/anim); returns the session folder."""
    s, fit = sphere_session / "session", sphere_session / "fit"
    code, _, err = run_cli(capsys, "render", "train", s, "--fit", fit, "--out", tmp_path / "m", "--size", "64",
                           "--iterations", "1", "--device", "cpu")
    assert code == 0, err
    sphere_rig(tmp_path / "rig")
    spin_animation(tmp_path / "anim", frames)
    return s


def jane_model(tmp_path, capsys, sphere_session):
    """A workspace tmp_path/ws where Jane's consent allows fit and render for "Dune", the sphere session copied
    in, a fit of her (ws/fit) and a one-step model trained under her consent (ws/m); returns (ws, the command-line
    options that name her: -W, --actor, --production)."""
    import shutil

    from tests.neural_render.scenes import uv_sphere

    ws = tmp_path / "ws"
    for args in (("init", ws), ("actor", "add", "Jane", "-W", ws),
                 ("consent", "grant", "jane", "--uses", "fit,render", "--production", "Dune", "--expires",
                  "2030-01-01", "-W", ws)):
        code, _, err = run_cli(capsys, *args)
        assert code == 0, err
    shutil.copytree(sphere_session / "session", ws / "session")
    fit_folder(ws / "fit", *uv_sphere(), actor="jane")
    who = ("-W", ws, "--actor", "jane", "--production", "Dune")
    code, _, err = run_cli(capsys, "render", "train", ws / "session", "--fit", ws / "fit", "--out", ws / "m",
                           "--size", "64", "--iterations", "1", "--device", "cpu", *who)
    assert code == 0, err
    return ws, who
