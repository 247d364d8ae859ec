"""Rig: posing identities, a brute-force LBS reference, save/load, validation."""

import json

import numpy as np
import pytest
import roma
import torch

from rigging import RIG_SCHEMA_VERSION, Rig, RigError


def tiny_rig(seed=0, n_vertices=40, blendshapes=2) -> Rig:
    """A 4-joint chain (root -> a -> b, root -> c) with random sparse weights and blendshapes."""
    rng = np.random.default_rng(seed)
    J = 4
    bind = np.tile(np.eye(4), (J, 1, 1))
    rots = roma.random_rotmat(J, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    bind[:, :3, :3] = rots
    bind[:, :3, 3] = [[0, 1, 0], [0, 1.3, 0], [0, 1.6, 0.1], [0.2, 0.9, 0]]
    v = rng.normal(0, 0.3, (n_vertices, 3)) + [0, 1.2, 0]
    idx = np.stack([rng.choice(J, 3, replace=False) for _ in range(n_vertices)])
    w = rng.uniform(0.1, 1, (n_vertices, 3))
    w /= w.sum(1, keepdims=True)
    faces = np.array([[i, i + 1, i + 2] for i in range(n_vertices - 2)])
    return Rig(joint_names=["root", "a", "b", "c"], parents=[-1, 0, 1, 0], bind_matrices=bind, vertices=v,
               faces=faces, skin_indices=idx, skin_weights=w, uvs=rng.random((n_vertices, 2)), face_uvs=faces,
               blendshape_names=[f"s{i}" for i in range(blendshapes)],
               blendshape_deltas=rng.normal(0, 0.01, (blendshapes, n_vertices, 3)))


def brute_force_lbs(rig: Rig, R: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The obvious per-joint, per-vertex loop: W_c = W_p (B_p^-1 B_c) [R_c|0], v' = sum w T_j v."""
    B = rig.bind_matrices
    W = np.zeros_like(B)
    for j, p in enumerate(rig.parents):
        Rj = np.eye(4)
        Rj[:3, :3] = R[j]
        if p < 0:
            Tt = np.eye(4)
            Tt[:3, 3] = t
            W[j] = Tt @ B[j] @ Rj
        else:
            W[j] = W[p] @ np.linalg.inv(B[p]) @ B[j] @ Rj
    T = W @ np.linalg.inv(B)
    v = rig.vertices.astype(np.float64) + np.einsum("n,nvc->vc", w, rig.blendshape_deltas.astype(np.float64))
    out = np.zeros_like(v)
    for i in range(len(v)):
        for k in range(rig.skin_indices.shape[1]):
            M = T[rig.skin_indices[i, k]]
            out[i] += rig.skin_weights[i, k] * (M[:3, :3] @ v[i] + M[:3, 3])
    return out


def test_lbs_matches_brute_force():
    rig = tiny_rig().validate()
    g = torch.Generator().manual_seed(1)
    R = roma.random_rotmat((2, 4), generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    w = torch.rand(2, 2, generator=g, dtype=torch.float64)
    got = rig.pose(R, t, w)
    for b in range(2):
        ref = brute_force_lbs(rig, R[b].numpy(), t[b].numpy(), w[b].numpy())
        assert np.abs(got[b].numpy() - ref).max() < 1e-9


def test_identity_is_bind_pose_and_axis_angle_equals_matrices():
    rig = tiny_rig()
    for method in ("lbs", "dqs"):
        v = rig.pose(np.zeros((4, 3)), method=method)
        assert v.shape == (1, 40, 3) and v.dtype == torch.float32
        assert np.abs(v[0].numpy() - rig.vertices).max() < 1e-6
    rv = torch.randn(3, 4, 3, dtype=torch.float64)
    assert (rig.pose(rv) - rig.pose(roma.rotvec_to_rotmat(rv))).abs().max() < 1e-12


def test_rigid_motion_lbs_equals_dqs_equals_rigid_transform():
    rig = tiny_rig()
    R0 = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64))
    R = torch.eye(3, dtype=torch.float64).repeat(1, 4, 1, 1)
    R[0, 0] = R0
    t = torch.tensor([[0.4, -0.2, 1.0]], dtype=torch.float64)
    Rb = torch.as_tensor(rig.bind_matrices[0, :3, :3])
    h = torch.as_tensor(rig.bind_matrices[0, :3, 3])
    A = Rb @ R0 @ Rb.T
    expect = (torch.as_tensor(rig.vertices, dtype=torch.float64) - h) @ A.T + h + t
    for method in ("lbs", "dqs"):
        assert (rig.pose(R, t, method=method)[0] - expect).abs().max() < 1e-6


def test_dqs_preserves_volume_better_than_lbs_on_a_twist():
    """A 150-degree twist of one joint: LBS collapses vertices shared with the parent towards the axis
    (candy-wrapper), DQS keeps their distance to it."""
    rig = tiny_rig(n_vertices=200)
    rig.skin_indices[:, :2] = [0, 1]
    rig.skin_indices[:, 2] = 2
    rig.skin_weights[:] = [0.5, 0.5, 0.0]
    R = torch.eye(3, dtype=torch.float64).repeat(1, 4, 1, 1)
    axis = torch.as_tensor(rig.bind_matrices[1, :3, :3].T @ np.array([0, 1.0, 0]))
    R[0, 1] = roma.rotvec_to_rotmat(axis * np.deg2rad(150))
    h = rig.bind_matrices[1, :3, 3]

    def radius(v):
        d = v - h
        return np.linalg.norm(d - np.outer(d[:, 1], [0, 1, 0]), axis=1).mean()

    r_bind = radius(rig.vertices.astype(np.float64))
    r_lbs = radius(rig.pose(R, method="lbs")[0].numpy())
    r_dqs = radius(rig.pose(R, method="dqs")[0].numpy())
    assert r_lbs < 0.5 * r_bind and abs(r_dqs - r_bind) < 0.05 * r_bind


def test_world_aligned_rotation_conversion():
    rig = tiny_rig()
    Rw = roma.rotvec_to_rotmat(torch.tensor([[0.0, 0.0, 0.7]], dtype=torch.float64))
    R = torch.eye(3, dtype=torch.float64).repeat(1, 4, 1, 1)
    R[0, 1] = Rw[0]
    local = rig.local_from_world_aligned(R)
    W = rig.forward_kinematics(local)
    # joint a's world rotation = Rw @ its bind rotation; its child b is carried about a's position
    assert (W[0, 1, :3, :3] - Rw[0] @ torch.as_tensor(rig.bind_matrices[1, :3, :3])).abs().max() < 1e-12
    ha, hb = rig.bind_matrices[1, :3, 3], rig.bind_matrices[2, :3, 3]
    assert (W[0, 2, :3, 3] - (torch.as_tensor(ha) + Rw[0] @ torch.as_tensor(hb - ha))).abs().max() < 1e-12


def test_gradients_flow_and_device_dtype_follow_input(device):
    rig = tiny_rig()
    rv = (torch.randn(2, 4, 3, dtype=torch.float64) * 0.2).to(device).requires_grad_()
    w = torch.rand(2, 2, dtype=torch.float64, device=device, requires_grad=True)
    ref = rig.pose(rv.detach().cpu(), None, w.detach().cpu())
    for method in ("lbs", "dqs"):
        v = rig.pose(rv, None, w, method=method)
        assert v.dtype == torch.float64 and v.device.type == device
        if method == "lbs":
            assert (v.detach().cpu() - ref).abs().max() < 1e-12
        v.square().sum().backward()
        assert rv.grad is not None and torch.isfinite(rv.grad).all() and rv.grad.abs().sum() > 0
        assert w.grad.abs().sum() > 0
        rv.grad = None
        w.grad = None


def test_pose_input_errors():
    rig = tiny_rig()
    with pytest.raises(ValueError, match=r"expected \(B, 4, 3\)"):
        rig.pose(np.zeros((1, 5, 3)))
    with pytest.raises(ValueError, match="blendshape_weights must be"):
        rig.pose(np.zeros((1, 4, 3)), blendshape_weights=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="method"):
        rig.pose(np.zeros((1, 4, 3)), method="cor")
    with pytest.raises(KeyError, match="no blendshape"):
        rig.blendshape_vector({"smile": 1.0})


def test_save_load_roundtrip(tmp_path):
    rig = tiny_rig()
    rig.metadata = {"source": {"model": "test"}}
    d = rig.save(tmp_path / "rig")
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["stage"] == "rig" and manifest["rig_schema_version"] == RIG_SCHEMA_VERSION
    assert manifest["rig"]["joints"] == 4 and manifest["outputs"]["rig"]["path"] == "rig.npz"
    back = Rig.load(d)
    for k in ("parents", "bind_matrices", "vertices", "faces", "skin_indices", "skin_weights", "uvs", "face_uvs",
              "blendshape_deltas"):
        assert np.array_equal(getattr(back, k), getattr(rig, k)), k
    assert back.joint_names == rig.joint_names and back.blendshape_names == rig.blendshape_names
    assert back.metadata == rig.metadata
    R = torch.randn(2, 4, 3)
    assert torch.equal(back.pose(R, None, torch.ones(2, 2)), rig.pose(R, None, torch.ones(2, 2)))
    assert not list(d.glob(".*tmp")), "no temporary files left behind"


def test_load_rejects_tampering_and_unknown_schema(tmp_path):
    d = tiny_rig().save(tmp_path / "rig")
    good = (d / "rig.npz").read_bytes()
    (d / "rig.npz").write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(RigError, match="rig.npz: content does not match the SHA-256"):
        Rig.load(d)
    (d / "rig.npz").write_bytes(good)
    m = json.loads((d / "manifest.json").read_text())
    m["rig_schema_version"] = 99
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RigError, match="rig_schema_version 99"):
        Rig.load(d)
    (d / "manifest.json").unlink()
    with pytest.raises(RigError, match="no manifest"):
        Rig.load(d)
    with pytest.raises(FileNotFoundError):
        Rig.load(tmp_path / "missing")


def test_failed_save_keeps_previous_files(tmp_path):
    d = tiny_rig(seed=0).save(tmp_path / "rig")
    before = (d / "rig.npz").read_bytes()
    bad = tiny_rig(seed=1)
    bad.skin_weights[3, 0] += 0.5
    with pytest.raises(RigError):
        bad.save(d)
    assert (d / "rig.npz").read_bytes() == before
    Rig.load(d)


@pytest.mark.parametrize("breakage, message", [
    (lambda r: r.skin_weights.__setitem__((5, 0), r.skin_weights[5, 0] + 0.2),
     r"weights do not sum to 1 \(vertex 5"),
    (lambda r: r.skin_weights.__setitem__(7, 0.0), r"vertices have no influence \(first: vertex 7\)"),
    (lambda r: r.vertices.__setitem__((3, 1), np.nan), r"vertices: non-finite values at vertex 3"),
    (lambda r: setattr(r, "parents", np.array([-1, 2, 1, 0])), r"joint 1 'a' has parent 2"),
    (lambda r: setattr(r, "parents", np.array([-1, 1, 1, 0])), r"joint 1 'a' has parent 1"),
    (lambda r: r.bind_matrices.__setitem__((2, 0, 0), 3.0), r"not rigid \(joint 2 'b'"),
    (lambda r: r.skin_indices.__setitem__((9, 0), 17), r"joint index outside \[0, 4\) at vertex 9"),
    (lambda r: r.faces.__setitem__((0, 0), 1000), r"faces: indices outside"),
    (lambda r: setattr(r, "joint_names", ["root", "a", "a", "c"]), r"duplicated \['a'\]"),
    (lambda r: setattr(r, "blendshape_deltas", r.blendshape_deltas[:, :5]), r"blendshape_deltas: shape"),
])
def test_validate_says_what_and_where(breakage, message):
    rig = tiny_rig()
    rig.validate()
    breakage(rig)
    with pytest.raises(RigError, match=message):
        rig.validate()


def test_top_k_truncates_and_renormalises(anny_model):
    rig = Rig.from_body_model(anny_model, None, top_k=4).validate()
    assert rig.skin_indices.shape[1] == 4
    assert np.allclose(rig.skin_weights.sum(1), 1, atol=1e-6)
    full = anny_model.skin_weights
    v = int(np.argmax((full.weights > 0).sum(1)))
    kept = sorted(zip(full.weights[v], full.indices[v], strict=True), reverse=True)[:4]
    assert set(rig.skin_indices[v]) == {j for _, j in kept}


def test_anny_rig_contents(anny_rig):
    rig = anny_rig.validate()
    assert rig.num_joints == 104 and rig.num_vertices == 13718 and rig.faces.shape == (27420, 3)
    assert len(rig.blendshape_names) == 52 and "jawOpen" in rig.blendshape_names
    assert rig.uvs is not None and rig.corrective_joints is None
    assert rig.metadata["source"]["model"] == "anny"
    # a smile moves mouth vertices by millimetres to centimetres, and nothing below the neck
    w = rig.blendshape_vector({"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0})
    d = (rig.pose(np.zeros((rig.num_joints, 3)), None, w)[0].numpy() - rig.vertices)
    moved = np.linalg.norm(d, axis=1)
    assert 0.003 < moved.max() < 0.05
    assert moved[rig.vertices[:, 1] < rig.bind_joints[rig.joint_index("neck01"), 1] - 0.1].max() < 1e-6


def test_dual_quaternion_kernels_against_roma_and_the_per_vertex_reference():
    from rigging.skinning import apply_dual_quaternions, dqs_blend_per_vertex, fk

    g = torch.Generator().manual_seed(0)
    q = roma.random_unitquat(50, generator=g, dtype=torch.float64) * 1.7      # unnormalised, as after blending
    t = torch.randn(50, 3, generator=g, dtype=torch.float64)
    d = 0.5 * roma.quat_product(torch.cat([t, torch.zeros(50, 1, dtype=torch.float64)], -1), q)
    v = torch.randn(50, 3, generator=g, dtype=torch.float64)
    qn = q / q.norm(dim=-1, keepdim=True)
    ref = roma.quat_action(qn, v, is_normalized=True) + \
        2 * roma.quat_product(d / q.norm(dim=-1, keepdim=True), roma.quat_conjugation(qn))[..., :3]
    assert (apply_dual_quaternions(q, d, v) - ref).abs().max() < 1e-12
    rigid = (roma.unitquat_to_rotmat(qn) @ v[..., None])[..., 0] + t     # the transform the dual quaternion encodes
    assert (apply_dual_quaternions(q, d, v) - rigid).abs().max() < 1e-12
    # the fast sparse path and the per-vertex path agree, including with joints flipped to the other hemisphere
    rig = tiny_rig(n_vertices=60)
    R = roma.rotvec_to_rotmat(roma.rotmat_to_rotvec(roma.random_rotmat((3, 4), generator=g, dtype=torch.float64)) * 0.4)
    fast = rig.pose(R, None, method="dqs")
    tens = rig.posing_state(R.device, R.dtype)
    A, wpos = fk(R, None, None, tens)
    h = tens.bind_pos[None]
    trans = wpos - (A @ h[..., None])[..., 0]
    qj = roma.rotmat_to_unitquat(A) * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)[None, :, None]
    dj = roma.quat_product(torch.cat([0.5 * trans, torch.zeros_like(trans[..., :1])], -1), qj)
    qb, db = dqs_blend_per_vertex(qj, dj, tens)
    slow = apply_dual_quaternions(qb, db, torch.as_tensor(rig.vertices, dtype=torch.float64)[None])
    assert (fast - slow).abs().max() < 1e-12


def test_dqs_vertices_beyond_180_degrees_follow_the_per_vertex_rule():
    """Two 120-degree turns down a chain put 'b' 240 degrees from 'root': vertices weighted on both need the
    per-vertex hemisphere flip; the result must equal the all-per-vertex reference everywhere."""
    from rigging.skinning import apply_dual_quaternions, dqs_blend_per_vertex, fk

    rig = tiny_rig(n_vertices=80)
    rig.skin_indices[:20] = [0, 2, 1]          # root first, then b: a pair two hops apart
    R = torch.eye(3, dtype=torch.float64).repeat(1, 4, 1, 1)
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, np.deg2rad(120)], dtype=torch.float64))
    R[0, 1] = torch.as_tensor(rig.bind_matrices[1, :3, :3]).T @ turn @ torch.as_tensor(rig.bind_matrices[1, :3, :3])
    R[0, 2] = torch.as_tensor(rig.bind_matrices[2, :3, :3]).T @ turn @ torch.as_tensor(rig.bind_matrices[2, :3, :3])
    got = rig.pose(R, None, method="dqs")
    tens = rig.posing_state(R.device, R.dtype)
    A, wpos = fk(R, None, None, tens)
    trans = wpos - (A @ tens.bind_pos[None][..., None])[..., 0]
    q = roma.rotmat_to_unitquat(A)
    assert (q[0, 0] * q[0, 2]).sum() * (q[0, 0] * q[0, 1]).sum() * (q[0, 1] * q[0, 2]).sum() < 0, \
        "the setup must need a flip"
    d = roma.quat_product(torch.cat([0.5 * trans, torch.zeros_like(trans[..., :1])], -1), q)
    qb, db = dqs_blend_per_vertex(q, d, tens)
    ref = apply_dual_quaternions(qb, db, torch.as_tensor(rig.vertices, dtype=torch.float64)[None])
    assert (got - ref).abs().max() < 1e-12


def test_an_animation_in_another_joint_order_poses_the_rig_as_in_its_own():
    """`in_rig_order` matches joints and blendshapes by name (what render shot, the retarget preview and the
    exporters pose with): a shuffled, partial animation gives the rig-order animation's vertices."""
    from rigging.animation import Animation, AnimationError, in_rig_order

    rig = tiny_rig()
    R = roma.random_rotmat(3 * 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    R = R.reshape(3, 4, 3, 3)
    R[:, 3] = np.eye(3)                                     # joint "c" at its bind pose
    t = np.random.default_rng(1).normal(0, 0.1, (3, 3))
    w = np.array([[0.0, 0.2], [0.0, 0.5], [0.0, 1.0]])
    order = [2, 0, 1]                                      # b, root, a; c not named; s1's weights only
    shuffled = Animation([rig.joint_names[j] for j in order], R[:, order], t, 30.0, blendshape_names=["s1"],
                         blendshape_weights=w[:, 1:])
    Rs, ts, ws = in_rig_order(shuffled, rig)
    np.testing.assert_allclose(Rs, R, atol=1e-12)
    np.testing.assert_allclose(ws, w)
    np.testing.assert_allclose(rig.pose(Rs, ts, ws).numpy(), rig.pose(R, t, w).numpy(), atol=1e-6)
    with pytest.raises(AnimationError, match=r"blendshapes \['jawOpen'\] are not in the rig \(its first"):
        in_rig_order(Animation(["root"], R[:, :1], t, 30.0, blendshape_names=["jawOpen"],
                               blendshape_weights=w[:, :1]), rig)
    with pytest.raises(AnimationError, match="1 of its 2 joints are not in the rig"):
        in_rig_order(Animation(["root", "tail"], R[:, :2], t, 30.0), rig)
    in_order = Animation(list(rig.joint_names), R, t, 30.0)
    assert np.shares_memory(in_rig_order(in_order, rig)[0], in_order.local_rotations)   # in its order: no copy
    Rf, tf, wf = in_rig_order(shuffled, rig, np.array([2, 0]))           # some frames only: those frames
    np.testing.assert_allclose(Rf, Rs[[2, 0]]) and np.testing.assert_allclose(tf, ts[[2, 0]])
    np.testing.assert_allclose(wf, ws[[2, 0]])


def test_the_rig_poser_poses_the_frames_it_is_asked_for():
    """`doppel.doubles.rig_poser` (the retarget preview's): each call's frames, posed as the whole animation in
    the rig's order poses them; an animation the rig cannot take is refused when the poser is made."""
    from doppel.doubles import rig_poser
    from rigging.animation import Animation, AnimationError, in_rig_order

    rig = tiny_rig()
    R = roma.random_rotmat(5 * 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    anim = Animation(list(rig.joint_names), R.reshape(5, 4, 3, 3), np.random.default_rng(2).normal(0, 0.1, (5, 3)),
                     30.0)
    pose = rig_poser(rig)(anim)
    Rw, tw, _ = in_rig_order(anim, rig)
    want = rig.pose(torch.as_tensor(Rw, dtype=torch.float32), torch.as_tensor(tw, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(pose(np.array([4, 1])), want[[4, 1]], atol=1e-6)
    with pytest.raises(AnimationError, match="not in the rig"):
        rig_poser(rig)(Animation(["root", "tail"], R.reshape(5, 4, 3, 3)[:, :2], tw, 30.0))
