"""SMPL-X and FLAME UV layouts from the files downloaded with the models (the SMPL-X .npz's vt / ft, smplx_uv.obj,
FLAME_texture.npz, head_template_mesh.obj), checked against the model's triangles; synthetic files only."""

import numpy as np
import pytest

from tests.reconstruction.synthetic_models import synthetic_arrays, write_flame_pkl, write_smplx_npz


def _layout(faces, seed=0):
    """A UV layout with seams: each triangle its own three texture vertices (uvs (3F, 2) in [0, 1])."""
    rng = np.random.default_rng(seed)
    F = len(faces)
    return rng.uniform(0, 1, (3 * F, 2)).astype(np.float32), np.arange(3 * F).reshape(F, 3)


def _write_obj(path, verts, faces, uvs, face_uvs, quads=False):
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts] + [f"vt {u:.7f} {v:.7f}" for u, v in uvs]
    lines += ["vn 0 0 1"]
    for f, t in zip(faces, face_uvs, strict=True):
        corners = [f"{a + 1}/{b + 1}/1" for a, b in zip(f, t, strict=True)]
        lines.append("f " + " ".join(corners + ([corners[0]] if quads else [])))
    path.write_text("\n".join(lines) + "\n")


def test_an_obj_layout_reads_as_trimesh_reads_it(tmp_path):
    import trimesh

    from reconstruction.body_models.uv_layouts import read_uv_file

    arr = synthetic_arrays([-1, 0, 1, 1, 1], n_side=8)
    uvs, face_uvs = _layout(arr["f"])
    _write_obj(tmp_path / "m.obj", arr["v_template"], arr["f"], uvs, face_uvs)
    got_uvs, got_ft, got_faces = read_uv_file(tmp_path / "m.obj")
    assert np.array_equal(got_faces, arr["f"]) and np.array_equal(got_ft, face_uvs)
    ref = trimesh.load(tmp_path / "m.obj", process=False)
    # trimesh splits vertices at UV seams: compare what each triangle corner gets
    assert np.allclose(got_uvs[got_ft], ref.visual.uv[ref.faces], atol=1e-6)
    assert np.allclose(ref.vertices[ref.faces], arr["v_template"][got_faces], atol=1e-5)


def test_smplx_takes_its_files_vt_ft_else_smplx_uv_obj(tmp_path):
    from reconstruction.body_models import SMPLXModel

    plain = write_smplx_npz(tmp_path / "a" / "SMPLX_NEUTRAL.npz")
    assert SMPLXModel(plain).uvs is None and SMPLXModel(plain).uv_source is None       # none anywhere: None
    arr = dict(np.load(plain))
    uvs, face_uvs = _layout(arr["f"], 1)
    np.savez(tmp_path / "b.npz", **arr, vt=uvs, ft=face_uvs)
    m = SMPLXModel(tmp_path / "b.npz")
    assert np.array_equal(m.uvs[0], uvs) and np.array_equal(m.uvs[1], face_uvs) and "vt / ft" in m.uv_source
    _write_obj(plain.parent / "smplx_uv.obj", arr["v_template"], arr["f"], uvs, face_uvs)
    m = SMPLXModel(plain)
    assert np.allclose(m.uvs[0], uvs, atol=1e-6) and np.array_equal(m.uvs[1], face_uvs)
    assert m.uv_source == str(plain.parent / "smplx_uv.obj")


def test_flame_finds_its_texture_space_beside_it_or_in_the_models_folder(tmp_path, monkeypatch):
    from reconstruction.body_models import FLAMEModel

    path = write_flame_pkl(tmp_path / "flame" / "FLAME_NEUTRAL.pkl")
    faces = FLAMEModel(path).faces
    uvs, face_uvs = _layout(faces, 2)
    np.savez(path.parent / "FLAME_texture.npz", vt=uvs, ft=face_uvs, mean=np.zeros((4, 4, 3)))
    m = FLAMEModel(path)
    assert np.array_equal(m.uvs[0], uvs) and m.uv_source.endswith("FLAME_texture.npz")
    (path.parent / "FLAME_texture.npz").unlink()
    models = tmp_path / "models"
    (models / "flame").mkdir(parents=True)
    arr = synthetic_arrays([-1, 0, 1, 1, 1], height=0.25)
    _write_obj(models / "flame" / "head_template_mesh.obj", arr["v_template"], faces, uvs, face_uvs)
    monkeypatch.setenv("DOPPEL_MODELS_DIR", str(models))
    assert FLAMEModel(path).uv_source.endswith("head_template_mesh.obj")


def test_a_uv_file_of_another_topology_is_refused_naming_it(tmp_path):
    from reconstruction.body_models import FLAMEModel, ModelFileError

    path = write_flame_pkl(tmp_path / "flame" / "FLAME_NEUTRAL.pkl")
    faces = FLAMEModel(path).faces
    uvs, face_uvs = _layout(faces, 3)
    np.savez(path.parent / "FLAME_texture.npz", vt=uvs, ft=face_uvs[:-1])           # a triangle short
    with pytest.raises(ModelFileError, match=r"FLAME_texture.npz: .* not a UV layout of the model's"):
        FLAMEModel(path)
    np.savez(path.parent / "FLAME_texture.npz", vt=uvs, ft=face_uvs + 10 ** 6)        # indices outside
    with pytest.raises(ModelFileError, match="outside"):
        FLAMEModel(path)
    (path.parent / "FLAME_texture.npz").unlink()
    obj = path.parent / "head_template_mesh.obj"
    verts = np.zeros((faces.max() + 1, 3))
    _write_obj(obj, verts, faces[::-1], uvs, face_uvs)                                   # same count, other mesh
    with pytest.raises(ModelFileError, match="triangles are not the model's"):
        FLAMEModel(path)
    _write_obj(obj, verts, faces, uvs, face_uvs, quads=True)
    with pytest.raises(ModelFileError, match="expected a triangle"):
        FLAMEModel(path)
    obj.write_text("v 0 0 0\n")
    with pytest.raises(ModelFileError, match="no texture coordinates"):
        FLAMEModel(path)


def test_a_fit_keeps_its_models_layout_and_a_rig_of_it_takes_it(tmp_path):
    """FIT/uv_layout.npz: the texture, rig and neural double of a FLAME fit need neither the model file nor its
    UV download later; the rig of such a model has the layout (no procedural albedo: that is Anny's layout)."""
    import json

    from doppel.doubles import albedo_for_rig
    from doppel.neural_inputs import adopt_uv_layout
    from reconstruction.body_models import FLAMEModel
    from reconstruction.fit_folder import FitFolder
    from rigging import Rig

    path = write_flame_pkl(tmp_path / "flame" / "FLAME_NEUTRAL.pkl")
    uvs, face_uvs = _layout(FLAMEModel(path).faces, 4)
    np.savez(path.parent / "FLAME_texture.npz", vt=uvs, ft=face_uvs)
    m = FLAMEModel(path)
    out = FitFolder(tmp_path / "fit").write(
        m, source="multiview", shape=np.zeros(m.num_betas), pose=np.zeros((5, 3)), root_translation=np.zeros(3),
        expression=None, model_vertices=m.bind_state().vertices, detail=None, metrics={}, params={})
    with np.load(out / "uv_layout.npz") as d:
        assert np.array_equal(d["uvs"], uvs) and np.array_equal(d["face_uvs"], face_uvs)
    assert json.loads((out / "manifest.json").read_text())["outputs"]["uv_layout"]["path"] == "uv_layout.npz"
    rig = Rig.from_body_model(m)
    assert np.array_equal(rig.uvs, uvs) and not adopt_uv_layout(rig, out)          # the same layout: kept
    assert albedo_for_rig(rig, tmp_path / "rig", tmp_path) is None
    rig.face_uvs = rig.face_uvs[:, ::-1].copy()
    assert adopt_uv_layout(rig, out) and np.array_equal(rig.face_uvs, face_uvs)      # the fit's layout wins


def test_a_damaged_uv_file_is_one_clear_error(tmp_path):
    """A truncated FLAME_texture.npz (it was 'BadZipFile', an internal error) or an OBJ line that does not parse:
    ModelFileError naming the file (and the line)."""
    from reconstruction.body_models import FLAMEModel, ModelFileError

    path = write_flame_pkl(tmp_path / "flame" / "FLAME_NEUTRAL.pkl")
    uvs, face_uvs = _layout(FLAMEModel(path).faces, 5)
    np.savez(path.parent / "FLAME_texture.npz", vt=uvs, ft=face_uvs)
    raw = (path.parent / "FLAME_texture.npz").read_bytes()
    (path.parent / "FLAME_texture.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match=r"FLAME_texture.npz: not a readable .npz"):
        FLAMEModel(path)
    (path.parent / "FLAME_texture.npz").unlink()
    (path.parent / "head_template_mesh.obj").write_text("vt 0.1 0.2\nvt 0.5 x\nf 1/1 2/2 3/1\n")
    with pytest.raises(ModelFileError, match=r"head_template_mesh.obj:2: .*'vt 0.5 x'"):
        FLAMEModel(path)
