"""sample_texture (bilinear + mip-mapping), sRGB, normals, shading and render_mesh."""

import pytest
import torch
import torch.nn.functional as tf

from capture import Camera
from neural_render import (
    Lighting,
    MipTexture,
    face_normals,
    linear_to_srgb,
    mip_pyramid,
    pytorch3d_available,
    rasterize,
    render_mesh,
    sample_texture,
    srgb_to_linear,
    vertex_normals,
)
from neural_render.texture import _footprint_level, mip_atlas, uv_footprint_level

TOL = 1e-5


def test_bilinear_at_texel_centres_and_between():
    tex = torch.arange(12.0).reshape(3, 4, 1)                # rows top -> bottom
    # texel (row r, col c) centre: u = (c + .5) / 4, v (up) = 1 - (r + .5) / 3
    uv = torch.tensor([[[[0.5 / 4, 1 - 0.5 / 3], [3.5 / 4, 1 - 2.5 / 3], [1.0 / 4, 1 - 0.5 / 3]]]])
    out = sample_texture(uv, tex, mipmap=False)[0, 0, :, 0]
    assert torch.allclose(out, torch.tensor([0.0, 11.0, 0.5]), atol=TOL)
    down = sample_texture(torch.tensor([[[[0.5 / 4, 0.5 / 3]]]]), tex, mipmap=False, v_up=False)
    assert torch.allclose(down[0, 0, 0], torch.tensor([0.0]), atol=TOL)


def test_mipmap_removes_aliasing_of_a_minified_checkerboard():
    n = 256
    tex = ((torch.arange(n)[:, None] + torch.arange(n)[None]) % 2).float()[..., None].expand(-1, -1, 3)
    # a 32 x 32 image with 7.3 texels between neighbouring pixels (mip level ~2.9)
    s = (torch.arange(32) * 7.3 + 1.7) / n
    uv = torch.stack(torch.meshgrid(s, 1 - s, indexing="xy"), -1)[None]
    plain = sample_texture(uv, tex, mipmap=False)
    mip = sample_texture(uv, tex, mipmap=True)
    assert plain.std() > 0.1                                   # aliased: samples hit single texels
    assert (mip - 0.5).abs().max() < 0.02                      # filtered: the average grey
    assert [p.shape[-1] for p in mip_pyramid(tex.permute(2, 0, 1)[None])] == [256, 128, 64, 32, 16, 8, 4, 2, 1]


def test_texture_gradients_and_per_view_textures():
    tex = torch.rand(2, 8, 8, 3, requires_grad=True)
    uv = torch.rand(2, 4, 4, 2)
    out = sample_texture(uv, tex)
    out.sum().backward()
    assert tex.grad.abs().sum() > 0
    one = sample_texture(uv[1:], tex[1].detach())
    assert torch.allclose(out[1], one[0], atol=TOL)


def test_a_mip_texture_samples_and_renders_as_its_tensor_does():
    """The pyramid built once gives the same values, bit for bit, as the tensor's pyramid built per call: sampled
    (mip-mapped, plain, per-view textures) and drawn by render_mesh; UVs of another dtype are refused."""
    tex = torch.rand(64, 48, 3)
    uv = torch.rand(1, 20, 20, 2) * 0.3
    mip = MipTexture(tex)
    assert mip.shape == (1, 64, 48, 3)
    assert torch.equal(sample_texture(uv, mip), sample_texture(uv, tex))
    assert torch.equal(sample_texture(uv, mip, mipmap=False), sample_texture(uv, tex, mipmap=False))
    per_view = torch.rand(2, 16, 16, 3)
    uv2 = torch.rand(2, 8, 8, 2)
    assert torch.equal(sample_texture(uv2, MipTexture(per_view)), sample_texture(uv2, per_view))
    v, f = _sphere()
    cam = Camera.look_at((0, 0, 2.0), (0, 0, 0), width=40, height=40, fov_y_deg=40)
    uvs = torch.rand(len(v), 2)
    assert torch.equal(render_mesh(v, f, cam, uvs=uvs, texture=mip, supersample=2),
                       render_mesh(v, f, cam, uvs=uvs, texture=tex, supersample=2))
    with pytest.raises(ValueError, match="sampled with UVs of torch.float64"):
        sample_texture(uv.double(), mip)
    with pytest.raises(ValueError, match="MipTexture: texture must be"):
        MipTexture(torch.rand(4, 4))


def _trilinear_reference(uv, tex, mask):
    """Every masked pixel sampled on both neighbouring pyramid levels and blended (the textbook trilinear
    filter, no shortcut), for comparison with sample_texture."""
    pyr = mip_pyramid(tex.permute(2, 0, 1)[None])
    level = uv_footprint_level(uv, tex.shape[:2], mask).clamp(0, len(pyr) - 1)
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - 2 * uv[..., 1]], -1)
    lo = level.floor()
    frac = (level - lo)[..., None]
    out = torch.zeros(*uv.shape[:3], tex.shape[-1], dtype=uv.dtype)
    for k in range(len(pyr)):
        at = (lo == k) & mask
        if not at.any():
            continue
        g = grid[at][None, None]
        s0 = tf.grid_sample(pyr[k], g, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
        s1 = tf.grid_sample(pyr[min(k + 1, len(pyr) - 1)], g, mode="bilinear", padding_mode="border",
                            align_corners=False)[0, :, 0].T
        out[at] = s0 + (s1 - s0) * frac[at]
    return out


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_mip_sampling_through_the_atlas_is_the_trilinear_filter(dtype, tol):
    """Sampling through the packed mip atlas gives the textbook trilinear filter (each level sampled alone with
    border clamping, then blended) to rounding, on a mix of magnified and minified pixels and a partial mask,
    and gradients still reach both the texture and the UVs."""
    torch.manual_seed(3)
    tex = torch.rand(128, 128, 4, dtype=dtype, requires_grad=True)
    s = torch.linspace(0.05, 1.0, 40, dtype=dtype) ** 3               # spacing grows: magnified -> minified
    uv = torch.stack(torch.meshgrid(s, 1 - s, indexing="xy"), -1)[None].requires_grad_(True)
    mask = torch.rand(1, 40, 40) > 0.2
    out = sample_texture(uv, tex, mask=mask)
    with torch.no_grad():
        ref = _trilinear_reference(uv, tex, mask)
    level = uv_footprint_level(uv, (128, 128), mask)[mask]
    assert (level == 0).float().mean() > 0.05 and (level > 1).any()       # both kinds of pixel present
    assert (out - ref).abs().max() < tol and torch.equal(out[~mask], ref[~mask])
    out.sum().backward()
    assert tex.grad.abs().sum() > 0 and uv.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("views", [1, 3])
def test_dense_and_sparse_trilinear_agree(views):
    """The GPU's dense trilinear (the next level sampled for every point) and the CPU's (only where the level's
    fraction is > 0) give the same values, with one texture or one per view."""
    from neural_render.texture import _trilinear

    torch.manual_seed(6)
    atlas, places = mip_atlas(mip_pyramid(torch.rand(views, 5, 64, 64)))
    n = 500
    pts, view = torch.rand(n, 2), torch.randint(views, (n,))
    level = torch.rand(n) * 7
    level[::3] = level[::3].floor()                                      # a third exactly on a level
    dense = _trilinear(atlas, places, pts, level, view, dense=True)
    sparse = _trilinear(atlas, places, pts, level, view, dense=False)
    assert (dense - sparse).abs().max() < 1e-6 and dense.abs().sum() > 0


def test_the_atlas_holds_every_level_in_place():
    """mip_atlas: each level sits at its place, unchanged (odd sizes too), and nothing overlaps."""
    for h, w in [(64, 64), (48, 80), (37, 21)]:
        levels = mip_pyramid(torch.rand(2, 3, h, w))
        atlas, places = mip_atlas(levels)
        used = torch.zeros(atlas.shape[-2:], dtype=torch.int64)
        for lv, (x0, y0, pw, ph) in zip(levels, places.long().tolist(), strict=True):
            assert (pw, ph) == (lv.shape[-1], lv.shape[-2])
            assert torch.equal(atlas[..., y0:y0 + ph, x0:x0 + pw], lv)
            used[y0:y0 + ph, x0:x0 + pw] += 1
        assert used.max() == 1


def test_the_footprint_of_a_masked_image_is_computed_in_its_bounding_box_with_the_same_levels():
    torch.manual_seed(4)
    uv = torch.rand(2, 30, 40, 2) * 0.2 + 0.4
    mask = torch.zeros(2, 30, 40, dtype=torch.bool)
    mask[0, 5:12, 8:20] = True
    mask[1, 14:25, 3:9] = torch.rand(11, 6) > 0.3
    whole = _footprint_level(uv, uv.new_tensor([64.0, 128.0]), mask)     # every pixel evaluated (a GPU's route)
    assert torch.equal(uv_footprint_level(uv, (128, 64), mask), whole)
    assert whole[~mask].eq(0).all() and whole[mask].gt(0).any()
    assert torch.equal(uv_footprint_level(uv, (128, 64), torch.zeros_like(mask)), torch.zeros(2, 30, 40))


def test_a_mask_one_row_or_one_column_high_has_a_footprint():
    # a render whose subject covers one row of samples (a head's crown at the edge of a strip) crashed in diff
    torch.manual_seed(0)
    uv = torch.rand(1, 8, 10, 2)
    row = torch.zeros(1, 8, 10, dtype=torch.bool)
    row[0, 3, 2:7] = True
    col = torch.zeros(1, 8, 10, dtype=torch.bool)
    col[0, 1:6, 4] = True
    for mask in (row, col):
        level = uv_footprint_level(uv, (64, 64), mask)
        assert torch.isfinite(level).all() and level[mask].gt(0).any() and level[~mask].eq(0).all()
        assert sample_texture(uv, torch.rand(64, 64, 3), mask=mask).shape == (1, 8, 10, 3)


def test_srgb_roundtrip():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert abs(srgb_to_linear(torch.tensor(0.5)).item() - 0.2140) < 1e-3


def _sphere(n=24):
    import trimesh
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.int64)


def test_normals_of_a_sphere_are_radial():
    v, f = _sphere()
    vn = vertex_normals(v, f)
    assert ((vn * torch.nn.functional.normalize(v, dim=-1)).sum(-1) > 0.99).all()
    fn = face_normals(v, f)
    centroid = v[f].mean(1)
    assert ((fn * centroid).sum(-1) > 0).all()                 # counter-clockwise = outward


def test_render_mesh_lit_textured_and_antialiased():
    v, f = _sphere()
    cam = Camera.look_at((0, 0, 2.0), (0, 0, 0), width=48, height=48, fov_y_deg=40)
    light = Lighting(ambient=(0, 0, 0), sky=(0, 0, 0), ground=(0, 0, 0), directions=[(1.0, 0, 0)],
                     colors=[(1.0, 1.0, 1.0)], camera_relative=False)
    rgba = render_mesh(v, f, cam, lighting=light, color=(1.0, 1.0, 1.0))
    assert rgba.shape == (1, 48, 48, 4)
    mask = rasterize(v, f, cam).mask
    assert torch.equal(rgba[..., 3] > 0, mask)
    right, left = rgba[0, 24, 34, :3].mean(), rgba[0, 24, 14, :3].mean()   # light from +X = image right
    assert right > 0.5 and left < 0.05
    # A red texture through UVs gives red pixels.
    uvs = torch.rand(len(v), 2)
    red = torch.zeros(4, 4, 3)
    red[..., 0] = 1
    rgba = render_mesh(v, f, cam, uvs=uvs, texture=red)
    px = rgba[0][mask[0]]
    assert (px[:, 0] > px[:, 1] + 0.2).all() and (px[:, 2] < 0.01).all()
    # Supersampling gives fractional alpha on the outline only.
    ss = render_mesh(v, f, cam, supersample=3)
    frac = (ss[..., 3] > 0.01) & (ss[..., 3] < 0.99)
    assert frac.sum() > 20 and (ss[0, 24, 24, 3] == 1)


def test_render_mesh_batch_of_meshes_and_flat_shading():
    v, f = _sphere()
    cam = Camera.look_at((0, 0, 2.0), (0, 0, 0), width=24, height=24, fov_y_deg=40)
    vb = torch.stack([v, v + torch.tensor([0.3, 0, 0])])
    rgba = render_mesh(vb, f, cam, smooth=False, vertex_colors=torch.ones(len(v), 3) * 0.5)
    assert rgba.shape == (2, 24, 24, 4)
    one = render_mesh(vb[1], f, cam, smooth=False, vertex_colors=torch.ones(len(v), 3) * 0.5)
    assert torch.allclose(rgba[1], one[0], atol=1e-5)
    assert not torch.equal(rgba[0, ..., 3], rgba[1, ..., 3])


def test_render_mesh_errors():
    v, f = _sphere()
    cam = Camera.look_at((0, 0, 2.0), (0, 0, 0), width=8, height=8, fov_y_deg=40)
    with pytest.raises(ValueError, match="uvs"):
        render_mesh(v, f, cam, texture=torch.zeros(4, 4, 3))
    with pytest.raises(ValueError, match="supersample"):
        render_mesh(v, f, cam, supersample=0)


@pytest.mark.skipif(not pytorch3d_available(), reason="pytorch3d is not installed (optional backend)")
def test_pytorch3d_backend_agrees():
    from tests.neural_render.test_raster import random_scene
    verts, faces = random_scene(2)
    cam = Camera.look_at((0, 0, 2.5), (0, 0, 0), width=64, height=48, fov_y_deg=60)
    a = rasterize(verts, faces, cam)
    b = rasterize(verts, faces, cam, backend="pytorch3d")
    assert (a.face_idx == b.face_idx).float().mean() > 0.999


def test_pytorch3d_backend_missing_is_a_clear_error():
    if pytorch3d_available():
        pytest.skip("pytorch3d is installed")
    from core.errors import MissingDependencyError
    cam = Camera.look_at((0, 0, 2.5), (0, 0, 0), width=8, height=8, fov_y_deg=60)
    with pytest.raises(MissingDependencyError, match="pip install"):
        rasterize(torch.eye(3), torch.tensor([[0, 1, 2]]), cam, backend="pytorch3d")
