"""Texture baking: the photos land on the right texels, occluded views do not contribute, frontal views win,
unseen texels are inpainted; and the CGI renderer of the baked texture."""

import math

import torch

from capture import Camera
from neural_render.bake import BakeConfig, bake_texture, push_pull_fill
from neural_render.cgi import render_cgi
from neural_render.gbuffer import gbuffer, uv_fragments
from neural_render.texture import sample_texture
from tests.neural_render.scenes import albedo_texture, ring_cameras, uv_sphere

TOL_SEEN = 0.02      # mean abs error of baked texels seen by a camera (linear RGB, bilinear resampling)


def _unlit(verts, faces, uvs, face_uvs, cams, albedo):
    g = gbuffer(verts, faces, uvs, face_uvs, cams)
    return sample_texture(g.uv, albedo, mask=g.mask), g.mask


def test_uv_fragments_cover_the_layout():
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    fr = uv_fragments(uvs, torch.tensor([[0, 1, 2]]), 8)
    # texel (row i, col j) is inside the lower-left triangle u + v <= 1 (v up: v = 1 - (i + .5) / 8)
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    s = (j + 0.5) / 8 + 1 - (i + 0.5) / 8
    clear = (s - 1).abs() > 1e-6                  # texel centres exactly on the hypotenuse may go either way
    assert torch.equal(fr.mask[0][clear], (s < 1)[clear])
    assert int(fr.mask[0].sum()) >= int((s < 1).sum())


def test_bake_recovers_the_albedo_where_seen_and_fills_the_rest():
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(8, 64)
    alb = albedo_texture(64)
    imgs, masks = _unlit(v, f, uv, fuv, cams, alb)
    res = bake_texture(v, f, uv, fuv, cams, list(imgs), list(masks), BakeConfig(size=64))
    err = (res.texture - alb).abs().mean(-1)
    assert float(res.seen.float().mean()) > 0.5
    assert float(err[res.seen].mean()) < TOL_SEEN
    assert bool(torch.isfinite(res.texture).all()) and float(res.texture[~res.seen].std()) > 0  # filled, not black
    assert set(res.views_used) == {f"cam{i}" for i in range(8)}


def test_occluded_texels_take_no_colour_from_the_camera():
    v, f, uv, fuv = uv_sphere()
    cam = Camera.look_at((0.0, 0.0, 2.0), (0.0, 0.0, 0.0), width=64, height=64, fov_y_deg=35.0, name="front")
    img = torch.ones(64, 64, 3) * torch.tensor([1.0, 0.0, 0.0])
    res = bake_texture(v, f, uv, fuv, cam, [img], None, BakeConfig(size=32))
    fr = uv_fragments(uv, fuv, 32)
    from neural_render.interpolate import interpolate
    pos = interpolate(v, fr, f)[0]
    front, back = (pos[..., 2] > 0.35) & fr.mask[0], (pos[..., 2] < -0.2) & fr.mask[0]   # away from the rim
    assert bool(res.seen[front].float().mean() > 0.9)
    assert not bool(res.seen[back].any())           # the far side is hidden by the near side (z-buffer)


def test_frontal_view_outweighs_a_grazing_one():
    v, f, uv, fuv = uv_sphere(24, 48)
    a = Camera.look_at((0.0, 0.0, 2.0), (0.0, 0.0, 0.0), width=64, height=64, fov_y_deg=35.0, name="a")
    b = Camera.look_at((2 * math.sin(1.2), 0.0, 2 * math.cos(1.2)), (0.0, 0.0, 0.0), width=64, height=64,
                       fov_y_deg=35.0, name="b")
    red, blue = torch.zeros(64, 64, 3), torch.zeros(64, 64, 3)
    red[..., 0] = 1
    blue[..., 2] = 1
    res = bake_texture(v, f, uv, fuv, Camera.stack([a, b]), [red, blue], None, BakeConfig(size=64))
    # the texel facing camera a (u = 0 at +z... the sphere's lon 0 is +z): u ~ 0.02, v = 0.5
    t = res.texture[32, 1]
    assert float(t[0]) > 0.8 and float(t[2]) < 0.2


def test_push_pull_keeps_known_and_interpolates_holes():
    vals = torch.zeros(8, 8, 1)
    vals[:, :4] = 1.0
    w = torch.ones(8, 8)
    w[:, 3:5] = 0
    out = push_pull_fill(vals, w)
    assert torch.equal(out[w > 0], vals[w > 0])
    assert 0.0 < float(out[4, 3, 0]) <= 1.0 and 0.0 <= float(out[4, 4, 0]) < 1.0


def test_cgi_renderer_reproduces_the_unlit_photos():
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(4, 64)
    alb = albedo_texture(64)
    imgs, masks = _unlit(v, f, uv, fuv, cams, alb)
    rgba = render_cgi(v, f, uv, fuv, cams, alb)
    assert torch.equal(rgba[..., 3] > 0, masks)
    assert float((rgba[..., :3] - imgs).abs().max()) < 1e-5
