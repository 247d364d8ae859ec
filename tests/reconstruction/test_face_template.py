"""The 3D template of MediaPipe's face-mesh points and the similarity that carries it onto a double."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reconstruction.fitting.face_template import (
    FACE_POINTS,
    TEMPLATE_PATH,
    load_face_template,
    make_face_template,
    place_by_eyes,
    place_missing_points,
    similarity,
)


def test_similarity_matches_scikit_image_umeyama():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    src = rng.normal(0, 0.05, (40, 3))
    R = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    dst = 1.7 * src @ R.T + [0.1, 0.6, 0.05] + rng.normal(0, 1e-3, src.shape)
    s, R_est, t = similarity(src, dst)
    ref = SimilarityTransform.from_estimate(src, dst).params
    assert np.allclose(s * R_est, ref[:3, :3], atol=1e-9) and np.allclose(t, ref[:3, 3], atol=1e-9)
    assert abs(s - 1.7) < 0.01 and np.allclose(R_est, R, atol=0.01)
    s, R_m, _ = similarity(src, src * [-1, 1, 1])               # a mirror is not a rotation: det stays +1
    assert np.linalg.det(R_m) > 0


def test_the_shipped_template_is_the_regressors_face_on_the_seed_0_double():
    """scripts/make_face_template.py would write the same file today (the regressor or Anny did not move)."""
    from doppel.doubles import build_default_rig

    pts, _ = make_face_template(build_default_rig("anny", seed=0)[0])
    assert np.allclose(load_face_template(), pts, atol=1e-5)
    span = pts.max(0) - pts.min(0)
    assert pts.shape == (FACE_POINTS, 3) and 0.12 < span[0] < 0.2 and 0.12 < span[1] < 0.2   # a face, in metres


def test_missing_points_land_on_the_surface_where_the_double_has_them():
    """On another double (seed 5), the outline placed from the template from the inner face's landmarks alone lands
    within millimetres of the regressor's own outline points."""
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import face_oval_ids
    from doppel.face_swap.face_basis import face_basis
    from doppel.face_swap.head_region import head_region

    rig = build_default_rig("anny", seed=5)[0]
    basis = face_basis(rig)
    oval = face_oval_ids()
    inner = ~np.isin(basis.ids, oval)
    verts, faces, _ = head_region(rig)
    on = place_missing_points(basis.ids[inner], basis.neutral[inner], oval, rig.vertices[verts], faces)
    placed = on.on(np.asarray(rig.vertices, np.float64)[verts], faces)
    own = basis.neutral[[list(basis.ids).index(i) for i in oval]]
    gap = np.linalg.norm(placed - own, axis=1)
    assert np.median(gap) < 0.004 and gap.max() < 0.01, gap
    assert np.median(on.distance) < 0.005
    with pytest.raises(ValueError, match="at least 6"):
        place_missing_points(basis.ids[:4], basis.neutral[:4], oval, rig.vertices[verts], faces)
    assert TEMPLATE_PATH.is_file()


def test_a_head_with_only_eyes_gets_the_whole_face_near_the_calibrated_one():
    """place_by_eyes on an Anny double (seed 5) from its eye joints alone: within millimetres of the calibrated
    regressor's points, and nearer than the eyes' placement before the surface fit."""
    from doppel.doubles import build_default_rig
    from doppel.face_swap.face_basis import face_basis
    from doppel.face_swap.head_region import head_region

    rig = build_default_rig("anny", seed=5)[0]
    basis = face_basis(rig)
    verts, faces, _ = head_region(rig)
    v = np.asarray(rig.vertices, np.float64)[verts]
    eyes = [np.asarray(rig.bind_matrices)[rig.joint_index(n), :3, 3] for n in ("eye.L", "eye.R")]
    gaps = {}
    for rounds in (0, 10):
        on = place_by_eyes(v, faces, *eyes, iterations=rounds)
        gaps[rounds] = np.linalg.norm(on.on(v, faces)[basis.ids] - basis.neutral, axis=1)
    print({k: f"median {np.median(g) * 1000:.1f} mm, p90 {np.percentile(g, 90) * 1000:.1f}" for k, g in gaps.items()})
    assert np.median(gaps[10]) < 0.003 and np.percentile(gaps[10], 90) < 0.005
    assert np.median(gaps[10]) < np.median(gaps[0])
