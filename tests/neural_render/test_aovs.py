"""Render passes of a shot (neural_render/aovs.py): exact on a plane whose depth, position and motion are known,
and equal to what Cycles writes for the same mesh and camera (its Depth, Position, Normal, UV and Vector passes)."""

import numpy as np
import pytest
import torch

from capture.camera import Camera
from neural_render.aovs import ALL_AOVS, AOVS, BACKGROUND_DEPTH, PARTS, frame_aovs, parse_aovs
from neural_render.image_io import write_exr


def _camera(centre, target, width=80, height=60, f=90.0) -> Camera:
    c, tgt = np.asarray(centre, float), np.asarray(target, float)
    z = (tgt - c) / np.linalg.norm(tgt - c)
    x = np.cross(z, [0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = np.array([[f, 0, width / 2 + 0.3], [0, f, height / 2 - 0.2], [0, 0, 1]])
    return Camera.from_opencv(K, R=R, tvec=-R @ c, width=width, height=height)


def _plane(z: float, dx: float = 0.0):
    """A 1 m square at depth z facing a camera at the origin looking down +z (two triangles, UVs 0..1)."""
    v = np.array([[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z]]) + [dx, 0, 0]
    f = np.array([[0, 2, 1], [0, 3, 2]])
    uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])      # v up: image row 0 (y = -0.5) at v = 1
    return torch.tensor(v), torch.tensor(f), torch.tensor(uv)


def test_parse_aovs():
    assert parse_aovs(None) == () and parse_aovs("") == ()
    assert parse_aovs("all") == ALL_AOVS and "parts" not in ALL_AOVS and "crypto" not in ALL_AOVS
    assert set(ALL_AOVS) | {"parts", "crypto"} == set(AOVS)
    assert parse_aovs("motion, depth") == ("depth", "motion")         # in AOVS order
    assert parse_aovs("parts") == ("parts",)
    with pytest.raises(ValueError, match="unknown pass colour; choose from depth, position"):
        parse_aovs("depth,colour")


def test_passes_of_a_plane_moving_across_the_view_are_exact():
    cam = Camera.from_opencv(np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]), R=np.eye(3), tvec=np.zeros(3),
                             width=64, height=48)
    frames = [_plane(2.0, dx)[0] for dx in (0.0, 0.1, 0.3)]        # 2.5 px, then 5 px to the right
    _, f, uv = _plane(2.0)
    surf = torch.stack(frames)
    out = frame_aovs(surf, 1, f, uv, f, cam, ALL_AOVS)
    assert all(x.dtype == torch.float32 and x.shape == (48, 64) for x in out.values())
    inside = out["Z"] < BACKGROUND_DEPTH
    assert 0.1 < inside.float().mean() < 0.5
    assert torch.allclose(out["Z"][inside], torch.tensor(2.0))
    assert torch.allclose(out["P.Z"][inside], torch.tensor(2.0))
    xs = (torch.arange(64) + 0.5 - 32) / 50 * 2.0                      # each pixel centre's x on the plane
    assert torch.allclose(out["P.X"][inside], xs.expand(48, 64)[inside], atol=1e-5)
    assert torch.allclose(out["N.Z"][inside], torch.tensor(-1.0))      # towards the camera
    assert torch.allclose(out["uv.u"][inside], (xs.expand(48, 64)[inside] - 0.1) + 0.5, atol=1e-5)
    assert torch.allclose(out["forward.u"][inside], torch.tensor(5.0), atol=1e-4)
    assert torch.allclose(out["backward.u"][inside], torch.tensor(-2.5), atol=1e-4)
    assert torch.allclose(out["forward.v"][inside], torch.tensor(0.0), atol=1e-4)
    for k in ("P.X", "N.Z", "uv.u", "forward.u"):
        assert (out[k][~inside] == 0).all()
    last = frame_aovs(surf, 2, f, uv, f, cam, ("motion",))             # the shot's end: the motion goes on
    assert torch.allclose(last["forward.u"][last["forward.u"] != 0], torch.tensor(5.0), atol=1e-4)
    one = frame_aovs(surf[:1], 0, f, uv, f, cam, ("motion",))
    assert all((x == 0).all() for x in one.values())
    up = frame_aovs(torch.stack([frames[0], frames[0] + torch.tensor([0.0, -0.2, 0.0])]), 0, f, uv, f, cam,
                    ("motion",))                                        # -y in the world: up in the image
    assert torch.allclose(up["forward.v"][up["forward.v"] != 0], torch.tensor(5.0), atol=1e-4)


def test_part_mattes_are_anti_aliased_and_sum_to_the_coverage():
    """The plane's two triangles labelled head and hands: each matte is its triangle's share of each pixel's 2 x 2
    samples (a half along the diagonal they share), the two sum to the coverage, the others are empty."""
    cam = Camera.from_opencv(np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]), R=np.eye(3), tvec=np.zeros(3),
                             width=64, height=48)
    v, f, uv = _plane(2.0)
    out = frame_aovs(v[None], 0, f, uv, f, cam, ("depth", "parts"), face_parts=torch.tensor([0, 1]))
    assert sorted(k for k in out if k.startswith("matte.")) == sorted(f"matte.{p}" for p in PARTS)
    head, hands, total = out["matte.head"], out["matte.hands"], sum(out[f"matte.{p}"] for p in PARTS)
    inside = out["Z"] < BACKGROUND_DEPTH
    core = -torch.nn.functional.max_pool2d(-inside[None].float(), 3, 1, 1)[0] > 0.5   # away from the plane's edge
    assert torch.allclose(total[core], torch.tensor(1.0)) and (total[~inside] < 1).all()
    edge = inside & ~core
    assert ((total[edge] > 0) & (total[edge] <= 1)).all() and (total[edge] < 1).any()    # the edge's pixels share
    assert (head[inside] > 0).float().mean() > 0.3 and (hands[inside] > 0).float().mean() > 0.3
    partial = (head > 0) & (head < 1)
    assert partial.sum() >= 20 and set(head[partial].unique().tolist()) <= {0.25, 0.5, 0.75}   # along the diagonal
    assert out["matte.feet"].max() == 0 and out["matte.body"].max() == 0
    with pytest.raises(ValueError, match="needs each face's body part"):
        frame_aovs(v[None], 0, f, uv, f, cam, ("parts",))


def test_passes_are_written_as_float32_channels_beside_the_colour(tmp_path):
    import OpenEXR

    rgba = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    z = np.full((6, 5), 123.456, np.float32)
    write_exr(tmp_path / "f.exr", rgba, extra={"Z": z, "N.X": -z})
    with OpenEXR.File(str(tmp_path / "f.exr"), separate_channels=True) as f:
        ch = {k: c.pixels for k, c in f.channels().items()}
    assert sorted(ch) == ["A", "B", "G", "N.X", "R", "Z"]
    assert ch["Z"].dtype == np.float32 and ch["R"].dtype == np.float16
    assert np.array_equal(ch["Z"], z)
    for bad in ({"A": z}, {"Z": z[:3]}):
        with pytest.raises(ValueError, match="channel"):
            write_exr(tmp_path / "g.exr", rgba, extra=bad)


def _band(n_lat=24, n_lon=48, r=0.4):
    """A sphere with its caps cut off (inside visible from above), lat-long UVs with a seam."""
    th, ph = np.linspace(0.5, np.pi - 0.2, n_lat + 1), np.linspace(0, 2 * np.pi, n_lon + 1)
    T, P = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([r * np.sin(T) * np.sin(P), r * np.cos(T) + 1.0, r * np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    uv = np.stack([P / (2 * np.pi), 1 - T / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v, f, uv


@pytest.mark.parametrize("eye", [(0.5, 1.3, 2.5), (0.3, 2.6, 1.2)], ids=["side", "into_the_band"])
def test_passes_are_what_cycles_writes_for_the_same_mesh(tmp_path, eye):
    """Cycles' data passes (Blender's own renderer) of the same deforming mesh and camera: Depth is planar depth
    as Z, Position is P, Normal is N (the side facing the camera, inside the band too), UV is uv; Vector's X, Y are
    the backward vector and Z, W the forward one reversed (both in pixels, y up)."""
    pytest.importorskip("bpy")
    from doppel.reference_passes import cycles_passes

    v, f, uv = _band()
    frames = np.stack([v + [-0.05, 0.0, 0.0], v, (v - [0, 1, 0]) * 1.1 + [0.04, 1.03, 0.0]])
    cam = _camera(eye, (0.0, 1.0, 0.0))
    cy = cycles_passes(frames, f, uv, f, cam, tmp_path)
    mine = {k: x.numpy() for k, x in frame_aovs(torch.tensor(frames), 1, torch.tensor(f), torch.tensor(uv),
                                                   torch.tensor(f), cam, ALL_AOVS).items()}
    covered = cy["Combined.A"] > 0.5
    hit = mine["Z"] < BACKGROUND_DEPTH
    assert (covered != hit).sum() <= 2 and hit.sum() > 400          # a pixel centre on an edge may differ
    m = covered & hit
    assert np.abs(mine["Z"][m] - cy["Depth.Z"][m]).max() < 2e-3       # metres (a pixel is ~3 cm here)
    for a in "XYZ":
        assert np.abs(mine[f"P.{a}"][m] - cy[f"Position.{a}"][m]).max() < 2e-3
    n = np.stack([mine[f"N.{a}"] for a in "XYZ"], -1)[m]
    cn = np.stack([cy[f"Normal.{a}"] for a in "XYZ"], -1)[m]
    angle = np.degrees(np.arccos(np.clip((n * cn).sum(-1) / np.linalg.norm(cn, axis=-1), -1, 1)))
    assert np.percentile(angle, 99) < 0.1 and angle.max() < 3.0   # at grazing silhouettes Cycles bends a normal
    assert np.abs(mine["uv.u"][m] - cy["UV.U"][m]).max() < 2e-3
    assert np.abs(mine["uv.v"][m] - cy["UV.V"][m]).max() < 2e-3
    for mine_k, cy_k, sign in (("backward.u", "X", 1), ("backward.v", "Y", 1), ("forward.u", "Z", -1),
                               ("forward.v", "W", -1)):
        assert np.abs(mine[mine_k][m] - sign * cy[f"Vector.{cy_k}"][m]).max() < 0.05, mine_k   # pixels
    assert np.abs(mine["forward.u"][m]).max() > 1.0                   # the mesh moved by pixels, not nothing


def test_the_faces_of_a_double_on_annys_mesh_carry_its_body_parts():
    """`doppel.shot_stage.face_parts` on Anny's mesh: the topmost faces are head, the lowest feet, the farthest
    out from the body's axis hands; a double on another mesh is refused."""
    from types import SimpleNamespace

    from doppel.shot_stage import face_parts
    from doppel.virtual_actor import body_model
    from neural_render.neural_double import topology_signature

    anny = body_model()
    uvs, face_uvs = anny.uvs
    v = anny.bind_state(None).vertices
    double = SimpleNamespace(uvs=torch.as_tensor(uvs), face_uvs=torch.as_tensor(face_uvs),
                             signature=lambda: topology_signature(anny.faces, uvs, face_uvs, anny.num_vertices))
    parts = face_parts(double).numpy()
    assert parts.shape == (len(anny.faces),) and set(np.unique(parts)) == {0, 1, 2, 3}
    centre = v[anny.faces].mean(1)
    assert (parts[np.argsort(centre[:, 1])[-200:]] == PARTS.index("head")).all()
    assert (parts[np.argsort(centre[:, 1])[:200]] == PARTS.index("feet")).all()
    assert (parts[np.argsort(np.abs(centre[:, 0]))[-100:]] == PARTS.index("hands")).all()
    other = SimpleNamespace(uvs=torch.as_tensor(uvs), face_uvs=torch.as_tensor(face_uvs), signature=lambda: "x")
    with pytest.raises(ValueError, match="not on Anny's mesh"):
        face_parts(other)
