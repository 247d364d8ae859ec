"""Garbage and core mattes of a neural render (neural_render.render_mattes): faint alpha away from the mesh
cleared, near-opaque alpha inside it made opaque, everything else as drawn."""

import torch

from neural_render.render_mattes import ALPHA_FLOOR, CORE_GAP, margin_px, matted, mesh_zones
from tests.neural_render.scenes import ring_cameras, uv_sphere


def test_zones_follow_the_meshs_coverage_grown_and_shrunk_by_the_margin():
    v, f, _, _ = uv_sphere()
    cam = ring_cameras(1, 64)[0]
    near, core = mesh_zones(v[None], f, cam)
    from neural_render.raster import rasterize

    covered = rasterize(v[None], f, cam).face_idx >= 0
    assert near.shape == covered.shape == core.shape
    assert bool((core <= covered).all()) and bool((covered <= near).all())
    m = margin_px(64, 64)
    rows = torch.nonzero(covered[0].any(1)).flatten()
    near_rows = torch.nonzero(near[0].any(1)).flatten()
    assert near_rows.min() == max(0, rows.min() - m) and near_rows.max() == min(63, rows.max() + m)
    assert 0 < core.sum() < covered.sum() < near.sum()


def test_the_square_sums_grow_and_shrink_as_a_square_max_pool_does():
    """The running-sum dilation and erosion against torch's max pool (the obvious, slower way)."""
    import torch.nn.functional as F

    from neural_render.render_mattes import _square_count

    g = torch.Generator().manual_seed(0)
    for shape, r in (((2, 37, 53), 4), ((1, 64, 48), 10), ((1, 9, 7), 6)):
        x = (torch.rand(shape, generator=g) > 0.93).to(torch.int32)
        x[:, 3:7, 2:5] = 1                           # a solid block so that the erosion keeps something
        pool = F.max_pool2d(x[:, None].float(), 2 * r + 1, stride=1, padding=r)[:, 0]
        assert torch.equal(_square_count(x, r) > 0, pool > 0)
        eroded = -F.max_pool2d(-x[:, None].float(), 2 * r + 1, stride=1, padding=r)[:, 0]
        assert torch.equal(_square_count(1 - x, r) == 0, eroded > 0)


def test_only_faint_alpha_away_and_near_opaque_alpha_inside_change():
    rgba = torch.rand(1, 8, 8, 4) * 0.5 + 0.25
    near = torch.zeros(1, 8, 8, dtype=torch.bool)
    near[:, 2:6, 2:6] = True
    core = torch.zeros_like(near)
    core[:, 3:5, 3:5] = True
    rgba[0, 0, 0, 3] = ALPHA_FLOOR / 2            # faint, away: cleared (RGB too)
    rgba[0, 0, 1, 3] = 0.3                        # strong, away (hair beyond the mesh): kept
    rgba[0, 2, 2, 3] = ALPHA_FLOOR / 2            # faint, near: kept
    rgba[0, 3, 3, 3] = 1 - CORE_GAP / 2           # near-opaque, core: opaque
    rgba[0, 3, 4, 3] = 0.5                        # half, core (a surface the network made transparent): kept
    rgba[0, 2, 3, 3] = 1 - CORE_GAP / 2           # near-opaque, near but not core: kept
    out = matted(rgba, near, core)
    assert out[0, 0, 0].abs().sum() == 0
    assert out[0, 3, 3, 3] == 1.0 and torch.equal(out[0, 3, 3, :3], rgba[0, 3, 3, :3])
    keep = torch.ones(1, 8, 8, dtype=torch.bool)
    keep[0, 0, 0] = keep[0, 3, 3] = False
    assert torch.equal(out[keep], rgba[keep])


def test_a_neural_shots_alpha_is_matted_where_the_mesh_says(monkeypatch):
    """render_shot_frames: a network alpha of 0.01 everywhere becomes exactly 0 away from the sphere, 0.95 exactly
    1 in its core; nothing else moves."""
    import neural_render.shot as shot
    from neural_render.raster import rasterize
    from tests.neural_render.test_shot_views import _model

    model, frames = _model()
    cam = ring_cameras(2, 32)[0]

    def flat(model, v, k, code=None):                # the network's output: alpha 0.95 on the mesh, 0.01 off it
        covered = (rasterize(model.surface(v)[None], model.faces, k).face_idx >= 0)[0]
        rgba = torch.full((*covered.shape, 4), 0.5)
        rgba[..., 3] = torch.where(covered, 0.95, 0.01)
        return rgba[None]

    monkeypatch.setattr(shot, "render_in_strips", flat)
    fr = next(iter(shot.render_shot_frames(model, frames[:1], cam, "neural")))
    a = torch.from_numpy(fr.rgba_linear[..., 3])
    near, core = mesh_zones(model.surface(frames[:1]), model.faces, cam)
    assert bool((a[~near[0]] == 0).all()) and bool((a[core[0]] == 1).all())
    between = near[0] & ~core[0]
    assert torch.allclose(a[between], torch.where(a[between] > 0.5, 0.95, 0.01))
