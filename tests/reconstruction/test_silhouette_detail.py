"""Silhouette detail: displacements along the normals grow a sphere to the masks of a larger one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from capture import Camera
from neural_render import rasterize
from reconstruction.silhouette_detail import DetailConfig, silhouette_detail


def _cameras(size: int) -> Camera:
    cams = [Camera.look_at(tuple(1.2 * np.array([np.sin(a), 0.3, np.cos(a)])), (0.0, 0.0, 0.0), width=size,
                           height=size, fov_y_deg=30.0) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    return Camera.stack(cams)


def test_detail_grows_a_sphere_to_larger_silhouettes():
    small = trimesh.creation.icosphere(subdivisions=3, radius=0.20)
    big = trimesh.creation.icosphere(subdivisions=3, radius=0.22)
    cams = _cameras(96)
    with torch.no_grad():
        masks = rasterize(torch.tensor(big.vertices, dtype=torch.float32), torch.tensor(big.faces),
                          cams).mask.float()
    res = silhouette_detail(np.asarray(small.vertices), np.asarray(small.faces), cams, masks,
                            DetailConfig(iterations=60, size=96, lr=0.002))
    assert res.disagreement_after < 0.5 * res.disagreement_before, (res.disagreement_before, res.disagreement_after)
    d = res.displacements[res.observed]
    assert res.observed.mean() > 0.3
    assert 0.008 < np.median(d) < 0.03, np.median(d)        # the radii differ by 20 mm
    grown = np.asarray(small.vertices) + res.offsets
    assert np.allclose(np.linalg.norm(res.normals, axis=1), 1.0, atol=1e-6)
    assert np.linalg.norm(grown, axis=1).mean() > 0.205


def test_detail_rejects_bad_settings():
    s = trimesh.creation.icosphere(subdivisions=1, radius=0.2)
    cams = _cameras(32)
    with pytest.raises(ValueError, match="iterations"):
        silhouette_detail(np.asarray(s.vertices), np.asarray(s.faces), cams, torch.zeros(6, 32, 32),
                          DetailConfig(iterations=0))
