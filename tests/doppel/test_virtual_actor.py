import numpy as np
import pytest

from doppel.albedo import REGIONS, rasterize_uv
from doppel.virtual_actor import build_virtual_actor


@pytest.fixture(scope="module")
def actor():
    return build_virtual_actor(seed=3, texture_size=256)


def test_same_seed_same_actor_bit_for_bit(actor):
    again = build_virtual_actor(seed=3, texture_size=256)
    assert np.array_equal(actor.vertices, again.vertices)
    assert np.array_equal(actor.texture, again.texture)
    assert actor.phenotype == again.phenotype and actor.pose == again.pose


def test_other_seed_other_actor(actor):
    other = build_virtual_actor(seed=4, texture_size=256)
    assert other.phenotype != actor.phenotype
    assert np.abs(other.vertices - actor.vertices).max() > 0.01


def test_frame_metres_y_up_facing_plus_z(actor):
    v = actor.vertices
    assert 1.4 < actor.height < 2.1, "a standing adult in metres"
    assert abs(v[:, 1].min()) < 0.02, "feet on the floor (rest pose at y = 0)"
    names = actor.joint_names
    head = actor.joints[names.index("head")]
    foot = actor.joints[names.index("foot.L")]
    assert head[1] > foot[1] + 1.0, "+Y is up"
    # the nose (the front-most head vertex) is in +Z of the head joint
    head_faces = actor.faces[actor.face_regions == REGIONS["head"]]
    nose = v[np.unique(head_faces)][np.argmax(v[np.unique(head_faces), 2])]
    assert nose[2] > head[2] + 0.05, "the actor faces +Z"
    # left side of the body is +X when facing +Z with +Y up (right-handed)
    assert actor.joints[names.index("wrist.L")][0] > 0 > actor.joints[names.index("wrist.R")][0]


def test_mesh_and_uv_arrays_are_consistent(actor):
    assert actor.vertices.dtype == np.float32 and actor.vertices.shape[1] == 3
    assert actor.faces.max() < len(actor.vertices) and actor.faces.min() >= 0
    assert actor.face_uvs.shape == actor.faces.shape and actor.face_uvs.max() < len(actor.uvs)
    assert np.isfinite(actor.vertices).all()
    assert len(actor.parents) == len(actor.joint_names) and actor.parents[0] == -1
    assert all(p < i for i, p in enumerate(actor.parents)), "parents in topological order"


def test_albedo_has_skin_eyes_lips_brows(actor):
    tex, n = actor.texture, actor.texture.shape[0]
    assert tex.shape == (256, 256, 3) and tex.dtype == np.float32
    assert 0.0 <= tex.min() and tex.max() <= 1.0
    # sample each painted region at the UV centroid of its faces
    uvc = actor.uvs[actor.face_uvs].mean(axis=1)
    def region_colour(name):
        sel = actor.face_regions == REGIONS[name]
        px = np.clip((uvc[sel] * [n, -n] + [0, n]).astype(int), 0, n - 1)
        return tex[px[:, 1], px[:, 0]].mean(axis=0)
    skin = region_colour("hand.L")
    assert skin[0] > skin[2], "skin is warmer than blue"
    eye = region_colour("eye_front.L")
    assert not np.allclose(eye, skin, atol=0.05), "eyes painted differently from skin"
    assert len(np.unique((tex * 16).astype(int).reshape(-1, 3), axis=0)) > 20, "texture has variation"


def test_uv_rasterizer_covers_a_triangle_exactly():
    tri = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # lower-left half of the texture
    face, bary = rasterize_uv(tri, 64)
    covered = face >= 0
    assert abs(covered.mean() - 0.5) < 64 / 64**2 + 1e-9  # half the texels, up to the diagonal
    assert covered[-1, 0] and not covered[0, -1]  # v up: row 0 is v = 1
    np.testing.assert_allclose(bary[covered].sum(axis=1), 1.0, atol=1e-9)


def test_bad_texture_size():
    with pytest.raises(ValueError, match="texture_size"):
        build_virtual_actor(0, texture_size=8)


# Recorded from the implementation before the actor was built through AnnyModel (its own anny.Anny with
# 'local-ref' pose parameters and Z-up conversion), seed 3: the refactor must keep the same mesh.
_SEED3_VERTEX_SUM = [36.0263123, 12661.1818239, 1368.9866733]
_SEED3_REST_SUM = [0.13648352, 13107.679, 1423.3875]
_SEED3_JOINT_SUM = [0.1628181, 67.5498309, 12.5353889]
_SEED3_VERTICES = {0: [-0.0264801, 1.485016, 0.1061947], 5000: [-0.1765746, 0.021634, 0.1823762],
                   13717: [-0.0196292, 1.4840466, 0.0734671]}


def test_same_mesh_as_before_the_body_model_adapter(actor):
    np.testing.assert_allclose(actor.vertices.astype(np.float64).sum(0), _SEED3_VERTEX_SUM, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(actor.rest_vertices.astype(np.float64).sum(0), _SEED3_REST_SUM, rtol=1e-6,
                               atol=1e-3)
    np.testing.assert_allclose(actor.joints.astype(np.float64).sum(0), _SEED3_JOINT_SUM, rtol=1e-6, atol=1e-5)
    for i, v in _SEED3_VERTICES.items():
        np.testing.assert_allclose(actor.vertices[i], v, atol=1e-6)


def test_pose_argument_rotates_in_doppel_world_axes(actor):
    """The seed lowers the left arm from Anny's reference pose about -Z (Doppel axes); a rotation about +Z
    instead raises it: the left wrist goes up, the rest pose stays."""
    names = actor.joint_names
    lifted = build_virtual_actor(seed=3, texture_size=64, pose={**actor.pose, "upperarm01.L": [0.0, 0.0, 0.3]})
    wrist = names.index("wrist.L")
    assert lifted.joints[wrist][1] > actor.joints[wrist][1] + 0.1
    np.testing.assert_array_equal(lifted.rest_vertices, actor.rest_vertices)
