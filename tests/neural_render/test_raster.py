"""rasterize() against the brute-force reference, batching, chunking, clipping, culling and bad input."""

import pytest
import torch

from capture import Camera
from neural_render import check_mesh, rasterize
from tests.neural_render.reference import brute_force_rasterize

MIN_AGREEMENT = 0.999   # fraction of pixels with the same face index as the reference (the bar)
BARY_TOL = 1e-4         # float32 barycentrics vs the float64 reference, on agreeing pixels
DEPTH_TOL = 1e-4        # metres


def random_scene(seed, n_faces=60, spread=0.8, size=0.35, z_center=0.0):
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(n_faces, 1, 3, generator=g) - 0.5) * 2 * spread
    centres[..., 2] += z_center
    verts = (centres + torch.randn(n_faces, 3, 3, generator=g) * size).reshape(-1, 3)
    faces = torch.arange(n_faces * 3).reshape(n_faces, 3)
    return verts, faces


def _compare(verts, faces, cam, near, cull=False, **kw):
    fr = rasterize(verts, faces, cam, near=near, cull_backfaces=cull, **kw)
    ref, rb, rd = brute_force_rasterize(cam.world_to_camera(verts), faces, cam.K, cam.height, cam.width,
                                        near=near, cull_backfaces=cull)
    same = fr.face_idx[0] == ref
    m = same & (ref >= 0)
    bary_err = (fr.bary[0][m].double() - rb[m]).abs().max().item() if m.any() else 0.0
    depth_err = (fr.depth[0][m].double() - rd[m]).abs().max().item() if m.any() else 0.0
    return same.sum().item(), same.numel(), bary_err, depth_err, ref


def test_random_scenes_match_brute_force_including_near_crossings():
    near = 0.4
    cam = Camera.look_at((0, 0, 1.3), (0, 0, 0), width=64, height=48, fov_y_deg=75)
    agree = total = crossing = covered = 0
    for seed in range(12):
        verts, faces = random_scene(seed)
        z = cam.world_to_camera(verts)[:, 2].view(-1, 3)
        crossing += int(((z < near).any(1) & (z >= near).any(1)).sum())
        a, n, be, de, ref = _compare(verts, faces, cam, near)
        agree, total = agree + a, total + n
        covered += int((ref >= 0).sum())
        assert be < BARY_TOL and de < DEPTH_TOL, (seed, be, de)
    assert crossing > 50, "the scenes must contain triangles crossing the near plane"
    assert covered > 0.3 * total
    assert agree / total >= MIN_AGREEMENT, agree / total


def test_big_triangles_crossing_near_plane_and_tiles():
    # A floor reaching under the camera, behind it, and far away: crosses z-near, needs many tiles.
    verts = torch.tensor([[-20, -1.0, 20], [20, -1.0, 20], [0, -1.0, -40], [-0.5, -0.5, -2], [0.5, -0.5, -2],
                          [0, 0.5, -2]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    cam = Camera.look_at((0, 0, 0), (0, -0.3, -1), width=96, height=80, fov_y_deg=100)
    for near in (0.05, 1.5):
        a, n, be, de, ref = _compare(verts, faces, cam, near)
        assert a / n >= MIN_AGREEMENT and be < BARY_TOL
        assert (ref == 0).any() and (ref == -1).any()


def test_backface_culling_matches_reference():
    cam = Camera.look_at((0, 0, 1.5), (0, 0, 0), width=48, height=40, fov_y_deg=70)
    verts, faces = random_scene(3)
    a, n, *_ = _compare(verts, faces, cam, 0.1, cull=True)
    assert a / n >= MIN_AGREEMENT
    full = rasterize(verts, faces, cam).mask.sum()
    culled = rasterize(verts, faces, cam, cull_backfaces=True).mask.sum()
    assert culled < full


def test_square_is_covered_exactly_and_facing():
    # Two CCW triangles (seen from +Z) of a square spanning pixels 8..24 exactly: 16 x 16 pixels covered.
    cam = Camera(K=torch.tensor([[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]), R=torch.diag(torch.tensor([1.0, -1, -1])),
                 t=torch.tensor([0, 0, 2.0]), width=32, height=32)
    # camera at +Z (world), looking at -Z; square at z = 0 from -0.5 to 0.5 spans 16 px at depth 2 (f = 32)
    verts = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    fr = rasterize(verts, faces, cam)
    assert int(fr.mask.sum()) == 256
    assert torch.allclose(fr.depth[fr.mask], torch.tensor(2.0))
    assert torch.allclose(fr.bary.sum(-1)[fr.mask], torch.tensor(1.0))
    assert int(rasterize(verts, faces, cam, cull_backfaces=True).mask.sum()) == 256       # front faces
    assert int(rasterize(verts, faces.flip(1), cam, cull_backfaces=True).mask.sum()) == 0  # back faces


def test_batches_and_chunking_agree():
    verts, faces = random_scene(5, n_faces=40)
    cams = Camera.orbit(3, (0, 0, 0), 2.5, 0.3, width=40, height=32, fov_y_deg=60)
    fr = rasterize(verts, faces, cams)
    assert fr.face_idx.shape == (3, 32, 40) and fr.bary.shape == (3, 32, 40, 3)
    for i in range(3):
        one = rasterize(verts, faces, cams[i])
        assert torch.equal(one.face_idx[0], fr.face_idx[i])
    tiny = rasterize(verts, faces, cams, max_candidates=64)
    assert torch.equal(tiny.face_idx, fr.face_idx)
    # A batch of meshes (same topology), each with its own camera.
    vb = torch.stack([verts, verts + torch.tensor([0.1, 0, 0]), verts * 0.9])
    frb = rasterize(vb, faces, cams)
    for i in range(3):
        assert torch.equal(rasterize(vb[i], faces, cams[i]).face_idx[0], frb.face_idx[i])
    assert torch.isinf(fr.depth[~fr.mask]).all() and (fr.bary[~fr.mask] == 0).all()


def test_float64_and_gradients_through_bary():
    verts, faces = random_scene(1, n_faces=10)
    cam = Camera.look_at((0, 0, 2.5), (0, 0, 0), width=24, height=20, fov_y_deg=60, dtype=torch.float64)
    v = verts.double().requires_grad_(True)
    fr = rasterize(v, faces, cam)
    assert fr.bary.dtype == torch.float64 and fr.depth.dtype == torch.float64
    (fr.bary[..., 1].sum() + fr.depth[fr.mask].sum()).backward()
    assert v.grad.abs().sum() > 0


@pytest.mark.parametrize("verts, faces, match", [
    (torch.zeros(3, 3), torch.tensor([[0, 1, 3]]), "face indices"),
    (torch.zeros(3, 3), torch.tensor([[0, -1, 2]]), "face indices"),
    (torch.tensor([[0, 0, 0], [1, float("nan"), 0], [0, 1, 0.0]]), torch.tensor([[0, 1, 2]]), "NaN"),
    (torch.tensor([[0, 0, 0], [1, float("inf"), 0], [0, 1, 0.0]]), torch.tensor([[0, 1, 2]]), "infinite"),
    (torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64), "empty"),
    (torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.int64), "empty"),
    (torch.zeros(3, 2), torch.tensor([[0, 1, 2]]), r"\(V, 3\)"),
    (torch.zeros(3, 3), torch.tensor([[0.0, 1, 2]]), "integer"),
])
def test_bad_input(verts, faces, match):
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=8, height=8, fov_y_deg=60)
    with pytest.raises(ValueError, match=match):
        rasterize(verts, faces, cam)


def test_bad_camera_and_options():
    with pytest.raises(ValueError, match="focal"):
        Camera(K=[[-5.0, 0, 4], [0, 5, 4], [0, 0, 1]], R=torch.eye(3), t=[0, 0, 2], width=8, height=8)
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=8, height=8, fov_y_deg=60)
    v, f = torch.eye(3), torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="near"):
        rasterize(v, f, cam, near=0.0)
    with pytest.raises(ValueError, match="distortion"):
        rasterize(v, f, Camera(K=cam.K, R=cam.R, t=cam.t, dist=[0.1, 0, 0, 0, 0], width=8, height=8))
    with pytest.raises(ValueError, match="cameras"):
        rasterize(torch.stack([v, v]), f, Camera.stack([cam, cam, cam]))
    with pytest.raises(ValueError, match="backend"):
        rasterize(v, f, cam, backend="opengl")
    assert check_mesh(v, f.int())[1].dtype == torch.int64


def test_all_behind_camera_is_background():
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=8, height=8, fov_y_deg=60)
    v = torch.tensor([[0, 0, 3.0], [1, 0, 3], [0, 1, 3]])
    fr = rasterize(v, torch.tensor([[0, 1, 2]]), cam)
    assert (fr.face_idx == -1).all()


def test_device_agrees_with_cpu(device):
    """The same scene on ``device`` (CUDA where present, marked gpu) gives the CPU's fragments."""
    verts, faces = random_scene(7, n_faces=50)
    cams = Camera.orbit(2, (0, 0, 0), 2.2, 0.3, width=48, height=40, fov_y_deg=70)
    ref = rasterize(verts, faces, cams, near=0.3)
    out = rasterize(verts.to(device), faces.to(device), cams.to(device=device), near=0.3)
    assert out.face_idx.device.type == device
    same = (out.face_idx.cpu() == ref.face_idx).float().mean()
    assert same >= MIN_AGREEMENT
    m = (out.face_idx.cpu() == ref.face_idx) & ref.mask
    assert torch.allclose(out.bary.cpu()[m], ref.bary[m], atol=BARY_TOL)


def test_geometry_stays_full_precision_inside_autocast(device):
    """rasterize and the G-buffer give the same fragments inside a bfloat16 autocast region as outside it (the
    neural renderer's shots run the U-Net under autocast; a rounded camera transform made blocky UVs and mask
    holes at 1024 px on an H200). Checked to fail without ``full_precision``: 0.7 % of the mask, UVs 0.99 off."""
    from neural_render.gbuffer import gbuffer

    verts, faces = random_scene(3, n_faces=80)
    verts = (verts * 0.3 + torch.tensor([0.0, 1.0, 0.0])).to(device)
    faces = faces.to(device)
    cam = Camera.look_at((0, 1.0, 3.0), (0, 1.0, 0), width=512, height=512, fov_y_deg=20).to(device=device)
    uvs = torch.rand(len(verts), 2, generator=torch.Generator().manual_seed(0)).to(device)
    ref_f, ref_g = rasterize(verts, faces, cam), gbuffer(verts, faces, uvs, faces, cam)
    with torch.autocast(device, dtype=torch.bfloat16):
        f, g = rasterize(verts, faces, cam), gbuffer(verts, faces, uvs, faces, cam)
    assert ref_g.mask.sum() > 1000
    assert torch.equal(f.face_idx, ref_f.face_idx) and torch.equal(g.mask, ref_g.mask)
    assert f.bary.dtype == torch.float32 and g.uv.dtype == torch.float32
    assert torch.equal(f.bary, ref_f.bary) and torch.equal(g.uv, ref_g.uv)
    assert torch.equal(g.normal_cam, ref_g.normal_cam)


def test_key_words_fallback_matches(monkeypatch):
    """The z-buffer keys built from two int32 words (little-endian machines) and by shift-and-or (the fallback)
    give the same fragments, near-plane crossings included."""
    import neural_render.raster as raster

    verts, faces = random_scene(5, n_faces=120, z_center=-1.2)
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=96, height=80, fov_y_deg=75)
    ref = rasterize(verts, faces, cam, near=0.5)
    monkeypatch.setattr(raster, "LITTLE_ENDIAN", not raster.LITTLE_ENDIAN)
    out = rasterize(verts, faces, cam, near=0.5)
    assert (ref.face_idx >= 0).sum() > 500
    assert torch.equal(out.face_idx, ref.face_idx) and torch.equal(out.bary, ref.bary)


@pytest.mark.parametrize("least", [1, 1024, 1 << 20])
def test_bin_merging_threshold_does_not_change_fragments(monkeypatch, least):
    """However small bins are merged (the GPU merges more than the CPU), the fragments are the same."""
    import neural_render.raster as raster

    verts, faces = random_scene(9, n_faces=400, size=0.2, z_center=-1.0)
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=120, height=100, fov_y_deg=80)
    ref = rasterize(verts, faces, cam, near=0.4)
    monkeypatch.setitem(raster.MIN_BIN_ITEMS, "cpu", least)
    out = rasterize(verts, faces, cam, near=0.4)
    assert (ref.face_idx >= 0).sum() > 1000
    assert torch.equal(out.face_idx, ref.face_idx) and torch.equal(out.bary, ref.bary)


def test_a_gpu_merges_bins_per_view_drawn_together(monkeypatch):
    """The CPU's threshold is fixed; a GPU's grows with the views of the call (a shot's frames drawn together keep
    about one view's bins, not eight times as many)."""
    import neural_render.raster as raster

    monkeypatch.setattr(raster, "MIN_BIN_ITEMS", {"cpu": 256, "other": 1024})
    assert raster.min_bin_items(torch.device("cpu"), 1) == raster.min_bin_items(torch.device("cpu"), 8) == 256
    assert raster.min_bin_items(torch.device("cuda"), 1) == 1024
    assert raster.min_bin_items(torch.device("cuda"), 8) == 8 * 1024


def test_far_plane():
    cam = Camera.look_at((0, 0, 2), (0, 0, 0), width=32, height=32, fov_y_deg=60)
    # a wall tilted in depth: camera z from ~1.4 (x = -1) to ~2.6 (x = +1)
    verts = torch.tensor([[-1.0, -1, 0.6], [1.0, -1, -0.6], [1.0, 1, -0.6], [-1.0, 1, 0.6]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    full = rasterize(verts, faces, cam)
    cut = rasterize(verts, faces, cam, far=2.0)
    assert full.mask.sum() > cut.mask.sum() > 0
    assert (cut.depth[cut.mask] <= 2.0 + 1e-5).all()
    assert torch.equal(cut.mask, full.mask & (full.depth <= 2.0)) or \
        (cut.mask != (full.mask & (full.depth <= 2.0))).sum() <= 2   # pixels exactly at z = far may differ
