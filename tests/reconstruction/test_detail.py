"""Detail displacements: the Laplacian against a brute-force build, recovery of a smooth bump from noisy
partial targets."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from reconstruction.detail import apply_displacements, solve_displacements, uniform_laplacian


def test_laplacian_matches_brute_force():
    m = trimesh.creation.icosphere(1)
    L = uniform_laplacian(m.faces, len(m.vertices)).toarray()
    ref = np.eye(len(m.vertices))
    for v, nb in enumerate(m.vertex_neighbors):
        ref[v, nb] -= 1.0 / len(nb)
    np.testing.assert_allclose(L, ref, atol=1e-12)
    np.testing.assert_allclose(L @ np.ones(len(m.vertices)), 0.0, atol=1e-12)


def test_smooth_bump_from_noisy_partial_target():
    m = trimesh.creation.icosphere(4, 0.2)
    v = m.vertices
    truth = 0.01 * np.exp(-((v[:, 2] - 0.2) ** 2 + v[:, 0] ** 2 + v[:, 1] ** 2) / (2 * 0.08 ** 2))
    rng = np.random.default_rng(0)
    target = truth + rng.normal(0, 0.002, len(v))
    w = (rng.uniform(size=len(v)) > 0.3).astype(float)      # 30 % unobserved (holes)
    d = solve_displacements(m.faces, len(v), target, w, lam_smooth=3.0, lam_mag=1e-4)
    raw_err = np.abs(target - truth)[w > 0].mean()
    err = np.abs(d - truth).mean()
    assert err < 0.5 * raw_err, (err, raw_err)
    out = apply_displacements(v, m.faces, d)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1) - 0.2, d, atol=2e-4)   # along the sphere's normals


def test_bad_target():
    m = trimesh.creation.icosphere(1)
    with pytest.raises(ValueError, match="target must be"):
        solve_displacements(m.faces, len(m.vertices), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        solve_displacements(m.faces, len(m.vertices), np.full(len(m.vertices), np.nan))
