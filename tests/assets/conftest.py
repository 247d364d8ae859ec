"""A tiny synthetic rig for the export tests: a bent chain of 4 joints with anatomical bind frames (+Y along the
bone) plus a second root, a tube of ~200 vertices with a UV seam, up to 5 influences per vertex, 2 blendshapes."""

import numpy as np
import pytest
import roma
import torch

from rigging import Rig


def _frame(y_dir: np.ndarray, rng) -> np.ndarray:
    y = y_dir / np.linalg.norm(y_dir)
    a = rng.normal(size=3)
    x = np.cross(y, a)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    return np.stack([x, y, z], 1)


def make_rig(seed: int = 0) -> Rig:
    rng = np.random.default_rng(seed)
    heads = np.array([[0.0, 0.9, 0.0], [0.02, 1.2, 0.01], [0.0, 1.5, 0.03], [0.01, 1.75, 0.0], [0.3, 0.1, 0.2]])
    dirs = [heads[1] - heads[0], heads[2] - heads[1], heads[3] - heads[2], np.array([0.1, 1.0, 0.05]),
            np.array([0.0, 0.2, 1.0])]
    names = ["hips", "spine.01", "chest", "neck-head", "prop"]
    parents = [-1, 0, 1, 2, -1]
    B = np.zeros((5, 4, 4))
    for j in range(5):
        B[j, :3, :3] = _frame(dirs[j], rng)
        B[j, :3, 3] = heads[j]
        B[j, 3, 3] = 1.0
    # tube along y from 0.85 to 1.95 around x = z = 0: rings x segments, with a UV seam at the last column
    rings, seg, r = 12, 16, 0.12
    ys = np.linspace(0.85, 1.95, rings)
    ang = np.arange(seg) * 2 * np.pi / seg
    verts = np.array([[r * np.cos(a), y, r * np.sin(a)] for y in ys for a in ang], dtype=np.float32)
    uvs = np.array([[s / seg, i / (rings - 1)] for i in range(rings) for s in range(seg + 1)], dtype=np.float32)
    faces, fuv = [], []
    for i in range(rings - 1):
        for s in range(seg):
            a, b = i * seg + s, i * seg + (s + 1) % seg
            c, d = a + seg, b + seg
            ua, ub = i * (seg + 1) + s, i * (seg + 1) + s + 1
            uc, ud = ua + seg + 1, ub + seg + 1
            faces += [[a, c, b], [b, c, d]]
            fuv += [[ua, uc, ub], [ub, uc, ud]]
    # weights: smooth falloff from the joints' heights, 5 slots, the prop root gets a little everywhere
    jy = heads[:4, 1]
    w = np.exp(-((verts[:, 1:2] - jy[None]) / 0.2) ** 2)
    w = np.concatenate([w, np.full((len(verts), 1), 0.03)], 1)
    w /= w.sum(1, keepdims=True)
    idx = np.tile(np.arange(5), (len(verts), 1))
    deltas = np.zeros((2, len(verts), 3), np.float32)
    top = verts[:, 1] > 1.6
    deltas[0, top] = 0.05 * verts[top] * np.array([1, 0, 1])      # "puff": the top rings widen
    deltas[1, :, 2] = 0.02 * np.sin(verts[:, 1] * 10)             # "wave" along z
    return Rig(joint_names=names, parents=parents, bind_matrices=B, vertices=verts, faces=np.array(faces),
               uvs=uvs, face_uvs=np.array(fuv), skin_indices=idx, skin_weights=w.astype(np.float32),
               blendshape_names=["puff", "wave"], blendshape_deltas=deltas,
               metadata={"model": "synthetic", "seed": seed, "actor_id": "actor-42", "consent_id": "consent-7"})


@pytest.fixture(scope="session")
def tiny_rig() -> Rig:
    return make_rig().validate()


@pytest.fixture(scope="session")
def tiny_rig_dir(tmp_path_factory, tiny_rig):
    d = tmp_path_factory.mktemp("rig")
    tiny_rig.save(d)
    return d


@pytest.fixture(scope="session")
def texture_png(tmp_path_factory):
    from PIL import Image

    p = tmp_path_factory.mktemp("tex") / "albedo.png"
    img = (np.random.default_rng(0).uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    Image.fromarray(img).save(p)
    return p


@pytest.fixture(scope="session")
def tiny_anim(tiny_rig):
    from assets.export import smooth_random_animation

    return smooth_random_animation(tiny_rig, frames=12, fps=24.0, seed=3, amplitude=0.5, blendshapes=2)


def random_rotations(T: int, J: int, seed: int = 0) -> np.ndarray:
    """(T, J, 3, 3) random rotations (for tests of the animation input)."""
    g = torch.Generator().manual_seed(seed)
    return roma.rotvec_to_rotmat(torch.randn(T, J, 3, generator=g, dtype=torch.float64)).numpy()


@pytest.fixture()
def consented_workspace(tmp_path_factory):
    """A workspace where actor-42 (whose likeness the tiny rig records) consented to exports for 'Film'."""
    import datetime as dt

    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace

    ws = Workspace.init(tmp_path_factory.mktemp("ws"))
    add_actor(ws, "Actor Forty-Two", actor_id="actor-42")
    consent = grant(ws, "actor-42", ["export"], "Film", dt.date.today() + dt.timedelta(days=30))
    return ws, consent.id
