"""`doppel texture` on an Anny fit and `doppel rig --fit FIT --texture TEX`: the rig carries the baked texture
(so exports do: doppel.doubles.albedo_for_rig finds RIG/albedo.png); a texture of another topology is refused."""

import json
import math

import numpy as np
import pytest
import torch

from capture import Camera
from capture.session import write_session
from core.meshio import write_ply
from core.storage import write_manifest
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def anny_session(tmp_path_factory):
    from neural_render import composite, render_mesh
    from reconstruction.body_models import AnnyModel

    root = tmp_path_factory.mktemp("anny")
    body = AnnyModel()
    v = np.asarray(body.bind_state(None).vertices, np.float32)
    f = body.faces
    centre = (v.min(0) + v.max(0)) / 2
    cams = [Camera.look_at(tuple(centre + 3.5 * np.array([math.sin(a), 0.1, math.cos(a)])), tuple(centre),
                           width=64, height=64, fov_y_deg=40.0, name=f"c{i}")
            for i, a in enumerate(np.linspace(0, 2 * math.pi, 4, endpoint=False))]
    with torch.no_grad():
        imgs = {c.name: composite(render_mesh(torch.from_numpy(v), torch.from_numpy(f), c,
                                              vertex_colors=torch.from_numpy(0.3 + 0.6 * (v - v.min(0)) /
                                                                             (v.max(0) - v.min(0)))),
                                  (0.4, 0.4, 0.45))[0].numpy() for c in cams}
    write_session(root / "session", cams, imgs)
    fit = root / "fit"
    fit.mkdir()
    (fit / "params.json").write_text(json.dumps({"model": "anny", "source": "test", "shape": {}}))
    write_ply(fit / "fit_mesh.ply", v, f)
    write_manifest(fit, "fit", params={"actor_id": "virtual"}, outputs={"params": "params.json",
                                                                        "fit_mesh": "fit_mesh.ply"})
    return root


def test_rig_carries_the_baked_texture(tmp_path, capsys, anny_session):
    from doppel.doubles import albedo_for_rig
    from rigging import Rig

    s, fit = anny_session / "session", anny_session / "fit"
    code, out, err = run_cli(capsys, "texture", s, "--fit", fit, "--out", tmp_path / "tex", "--size", "256")
    assert code == 0, err
    code, out, err = run_cli(capsys, "rig", "--fit", fit, "--texture", tmp_path / "tex", "--out", tmp_path / "rig",
                             "--preview-size", "64")
    assert code == 0, err
    assert (tmp_path / "rig" / "albedo.png").read_bytes() == (tmp_path / "tex" / "albedo.png").read_bytes()
    assert "albedo" in json.loads((tmp_path / "rig" / "manifest.json").read_text())["outputs"]
    rig = Rig.load(tmp_path / "rig")
    assert albedo_for_rig(rig, tmp_path / "rig", tmp_path) == tmp_path / "rig" / "albedo.png"


def test_rig_refuses_a_texture_of_another_topology(tmp_path, capsys, anny_session):
    fit = anny_session / "fit"
    tex = tmp_path / "tex"
    tex.mkdir()
    (tex / "albedo.png").write_bytes(b"")
    write_manifest(tex, "texture", params={"actor_id": "virtual"}, outputs={"albedo": "albedo.png"},
                   extra={"texture": {"signature": "0000000000000000"}})
    code, out, err = run_cli(capsys, "rig", "--fit", fit, "--texture", tex, "--out", tmp_path / "rig",
                             "--preview-size", "64")
    assert code != 0 and "baked on another topology" in " ".join((out + err).split())
    assert not (tmp_path / "rig").exists()
    code, out, err = run_cli(capsys, "rig", "--texture", tex, "--out", tmp_path / "rig")
    assert code != 0 and "--texture needs --fit" in " ".join((out + err).split())


def test_a_texture_of_another_actor_is_a_likeness_of_the_rig(tmp_path, capsys, anny_session):
    """The virtual actor's fit with a texture folder recording actor 'jane': the rig would carry jane's skin, so
    the gate decides on both (jane's, who needs a workspace and a consent): refused, nothing written."""
    tex = tmp_path / "tex"
    tex.mkdir()
    (tex / "albedo.png").write_bytes(b"")
    write_manifest(tex, "texture", params={"actor_id": "jane"}, outputs={"albedo": "albedo.png"},
                   extra={"texture": {"signature": "0000000000000000"}})
    code, out, err = run_cli(capsys, "rig", "--fit", anny_session / "fit", "--texture", tex, "--out",
                             tmp_path / "rig", "--preview-size", "64")
    assert code != 0 and "jane" in " ".join((out + err).split()), out + err
    assert not (tmp_path / "rig").exists()


def test_the_bake_holds_one_photo_at_a_time(tmp_path, anny_session, monkeypatch):
    """Every photo was read into memory before the bake began (3.2 GB for 16 cameras at 4096 px, float32); each is
    now read when its view is baked, and let go after: never more than one alive at once (the texture the same)."""
    import weakref

    import doppel.neural_inputs as neural_inputs
    from doppel.texture_stage import bake_session

    real, alive, most = neural_inputs.load_photo, set(), [0]

    def counted(path, camera):
        img = real(path, camera)
        key = object()
        alive.add(key)
        weakref.finalize(img, alive.discard, key)
        most[0] = max(most[0], len(alive))
        return img

    monkeypatch.setattr(neural_inputs, "load_photo", counted)
    s, fit = anny_session / "session", anny_session / "fit"
    metrics = bake_session(s, fit, tmp_path / "tex", size=256)
    assert metrics["views"] == 4 and most[0] == 1, most
