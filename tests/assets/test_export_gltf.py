"""glTF 2.0 binary export: structure, provenance, and a small independent glTF evaluator (numpy, written from the
specification: node TRS, animation samplers, skins, morph targets) that must reproduce Rig.pose."""

import json

import numpy as np
import pytest
import roma
import torch

from assets.export import ExportError, export_rig
from assets.export.common import prepare_scene, reference_vertices
from assets.export.gltf import read_glb_json, split_vertices
from assets.export.run import default_options
from tests.gltf_validator import assert_valid_gltf

TOL_M = 1e-5          # float32 file data, metres
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {5126: np.float32, 5123: np.uint16, 5125: np.uint32, 5121: np.uint8}


def _read_glb(path):
    data = path.read_bytes()
    n = int.from_bytes(data[12:16], "little")
    doc = json.loads(data[20:20 + n])
    blob = data[20 + n + 8:]

    def view(bv_index, dtype, n):
        return np.frombuffer(blob, dtype, n, doc["bufferViews"][bv_index].get("byteOffset", 0))

    def acc(i):
        a = doc["accessors"][i]
        k = _NCOMP[a["type"]]
        if "bufferView" in a:
            arr = np.frombuffer(blob, _DTYPE[a["componentType"]], a["count"] * k,
                                doc["bufferViews"][a["bufferView"]].get("byteOffset", 0) + a.get("byteOffset", 0))
        else:
            arr = np.zeros(a["count"] * k, _DTYPE[a["componentType"]])
        if "sparse" in a:                                # spec 3.6.2.3: replace the listed elements
            sp = a["sparse"]
            idx = view(sp["indices"]["bufferView"], _DTYPE[sp["indices"]["componentType"]], sp["count"])
            vals = view(sp["values"]["bufferView"], _DTYPE[a["componentType"]], sp["count"] * k)
            arr = arr.copy().reshape(a["count"], k)
            arr[idx.astype(int)] = vals.reshape(-1, k)
            arr = arr.reshape(-1)
        return arr.reshape(a["count"], k) if k > 1 else arr

    return doc, acc


def _trs(t, q, s=(1, 1, 1)):
    M = np.eye(4)
    M[:3, :3] = roma.unitquat_to_rotmat(torch.tensor(q, dtype=torch.float64)).numpy() * np.asarray(s)
    M[:3, 3] = t
    return M


def evaluate_glb(path, frame: int) -> np.ndarray:
    """Skinned, morphed POSITION of the file's one mesh at animation sample ``frame`` (V', 3)."""
    doc, acc = _read_glb(path)
    nodes = doc["nodes"]
    local = {i: [np.asarray(n.get("translation", [0, 0, 0]), float), np.asarray(n.get("rotation", [0, 0, 0, 1]),
                                                                                  float)] for i, n in enumerate(nodes)}
    mesh_node = next(i for i, n in enumerate(nodes) if "mesh" in n)
    weights = np.asarray(doc["meshes"][0].get("weights", []), float)
    for ch in doc["animations"][0]["channels"]:
        s = doc["animations"][0]["samplers"][ch["sampler"]]
        out = acc(s["output"]).astype(float)
        node, path_ = ch["target"]["node"], ch["target"]["path"]
        if path_ == "translation":
            local[node][0] = out[frame]
        elif path_ == "rotation":
            local[node][1] = out[frame]
        elif path_ == "weights":
            weights = out.reshape(len(acc(s["input"])), -1)[frame]
    world = {}

    def walk(i, parent):
        world[i] = parent @ _trs(*local[i])
        for c in nodes[i].get("children", []):
            walk(c, world[i])

    for r in doc["scenes"][0]["nodes"]:
        walk(r, np.eye(4))
    skin = doc["skins"][nodes[mesh_node]["skin"]]
    ibm = acc(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1).astype(float)
    S = np.stack([world[j] for j in skin["joints"]]) @ ibm
    prim = doc["meshes"][0]["primitives"][0]
    pos = acc(prim["attributes"]["POSITION"]).astype(float)
    for w, tgt in zip(weights, prim.get("targets", []), strict=True):
        pos = pos + w * acc(tgt["POSITION"])
    out = np.zeros_like(pos)
    k = 0
    while f"JOINTS_{k}" in prim["attributes"]:
        J, W = acc(prim["attributes"][f"JOINTS_{k}"]).astype(int), acc(prim["attributes"][f"WEIGHTS_{k}"])
        for c in range(4):
            out += W[:, c, None] * (np.einsum("vab,vb->va", S[J[:, c], :3, :3], pos) + S[J[:, c], :3, 3])
        k += 1
    return out


@pytest.fixture(scope="module")
def glb(tmp_path_factory, tiny_rig, tiny_anim, texture_png):
    out = tmp_path_factory.mktemp("glb") / "double.glb"
    res = export_rig(tiny_rig, "glb", out, tiny_anim, texture=texture_png,
                     provenance={"actor_id": "actor-42", "consent_ref": "consent-7", "doppel_version": "0.1.0"})
    assert res.frames == 12 and res.bytes == out.stat().st_size
    return out


def test_glb_structure_and_provenance(glb, tiny_rig):
    doc = read_glb_json(glb)
    assert doc["asset"]["version"] == "2.0"
    assert doc["asset"]["extras"]["doppel"]["actor_id"] == "actor-42"
    assert doc["asset"]["extras"]["doppel"]["consent_ref"] == "consent-7"
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == ["puff", "wave"]
    prim = mesh["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0", "JOINTS_0", "WEIGHTS_0", "JOINTS_1", "WEIGHTS_1"} <= set(
        prim["attributes"])                                      # 5 influences -> two sets of 4
    assert len(prim["targets"]) == 2
    puff = doc["accessors"][prim["targets"][0]["POSITION"]]
    assert 0 < puff["sparse"]["count"] < puff["count"]          # sparse: only the vertices the shape moves
    assert [doc["nodes"][j]["name"] for j in doc["skins"][0]["joints"]] == tiny_rig.joint_names
    paths = {ch["target"]["path"] for ch in doc["animations"][0]["channels"]}
    assert paths == {"rotation", "translation", "weights"}
    mat = doc["materials"][prim["material"]]
    assert mat["pbrMetallicRoughness"]["baseColorTexture"]["index"] == 0
    assert doc["images"][0]["mimeType"] == "image/png"


def test_glb_independent_evaluation_matches_rig_pose(glb, tiny_rig, tiny_anim):
    frames = [0, 6, 11]
    ref = reference_vertices(tiny_rig, tiny_anim, frames)
    src, _, _ = split_vertices(prepare_scene(tiny_rig, None, default_options("glb")))
    for i, f in enumerate(frames):
        got = evaluate_glb(glb, f)
        assert got.shape == (len(src), 3)
        assert np.abs(got - ref[i, src]).max() < TOL_M
    # the check can fail: a frame off by one is far off
    assert np.abs(evaluate_glb(glb, 1) - ref[0, src]).max() > 1e-3


def test_joints_a_take_leaves_at_rest_have_no_channel(tmp_path, tiny_rig):
    """A joint at its rest for the whole take (a body take's fingers, toes, eyes) and all-zero morph weights get no
    channel (the node's rest rotation and the mesh's default weights hold: a 10-minute take's .glb onto the demo
    double 137.9 -> 32.5 MB); the file still poses as Rig.pose, by the test's own evaluator and Blender's importer."""
    from assets.export.common import smooth_random_animation
    from rigging.animation import Animation

    anim = smooth_random_animation(tiny_rig, frames=12, blendshapes=2)
    still = tiny_rig.joint_names.index("neck-head")
    R = anim.local_rotations.copy()
    R[:, still] = np.eye(3)
    anim = Animation(joint_names=anim.joint_names, local_rotations=R, root_translation=anim.root_translation,
                     fps=anim.fps, blendshape_names=anim.blendshape_names,
                     blendshape_weights=np.zeros_like(anim.blendshape_weights))
    out = export_rig(tiny_rig, "glb", tmp_path / "still.glb", anim).path
    doc = read_glb_json(out)
    targets = [(ch["target"]["node"], ch["target"]["path"]) for ch in doc["animations"][0]["channels"]]
    assert (still, "rotation") not in targets and not any(p == "weights" for _, p in targets)
    assert sum(p == "rotation" for _, p in targets) == len(tiny_rig.joint_names) - 1
    frames = [0, 5, 11]
    ref = reference_vertices(tiny_rig, anim, frames)
    src, _, _ = split_vertices(prepare_scene(tiny_rig, None, default_options("glb")))
    for k, f in enumerate(frames):
        np.testing.assert_allclose(evaluate_glb(out, f), ref[k, src], atol=1e-5)
    from assets.export.fbx import evaluate_in_blender

    (ev,) = evaluate_in_blender([out], frames, anim.fps)                # Blender keeps glTF's vertices
    assert np.abs(ev.vertices - ref[:, src]).max() < 1e-5


def test_glb_split_vertices_keeps_uv_seams(tiny_rig):
    sc = prepare_scene(tiny_rig, None, default_options("glb"))
    src, tris, uv = split_vertices(sc)
    assert len(src) == 12 * 17                                    # one extra column on the seam
    np.testing.assert_array_equal(src[tris], sc.faces)
    np.testing.assert_allclose(uv[tris], sc.uvs[sc.face_uvs])


def test_glb_bind_pose_without_animation(tmp_path, tiny_rig):
    out = export_rig(tiny_rig, "glb", tmp_path / "rest.glb").path
    doc = read_glb_json(out)
    assert doc.get("animations", []) == [] and "extras" in doc["asset"]


def test_glb_files_pass_the_khronos_validator(glb, tmp_path, tiny_rig):
    """The animated, textured file with morph targets, and a rest pose with neither texture nor animation: no error
    and no warning from the Khronos glTF-Validator (before stop 73 every sparse morph target carried the byteOffset
    0 that glTF forbids without a bufferView: 52 errors on the demo's double)."""
    rest = export_rig(tiny_rig, "glb", tmp_path / "rest.glb").path
    reports = assert_valid_gltf(glb, rest)
    assert [r["numErrors"] + r["numWarnings"] for r in reports] == [0, 0]


def test_glb_bad_texture_leaves_no_file(tmp_path, tiny_rig):
    tex = tmp_path / "albedo.tga"
    tex.write_bytes(b"not an image")
    with pytest.raises(ExportError, match="PNG or JPEG"):
        export_rig(tiny_rig, "glb", tmp_path / "x.glb", texture=tex)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["albedo.tga"]
