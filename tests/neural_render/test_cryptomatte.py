"""Cryptomatte (neural_render/cryptomatte.py): names hashed as Blender's Cycles hashes them, ranks of coverage
packed as the specification lays them out, and a shot's layer equal to what Cycles writes for the same mesh,
labels and camera (its CryptoMaterial pass)."""

import json

import numpy as np
import pytest
import torch

from neural_render.cryptomatte import LEVELS, coverage_ranks, crypto_channels, crypto_header, matte, name_hash, name_id


def test_names_hash_to_the_ids_blender_writes():
    """Blender 5.0's own manifest of a render with materials 'head' and 'hand.L' and its layer key of
    'ViewLayer.CryptoMaterial' (read from an EXR Cycles wrote)."""
    assert f"{name_hash('head'):08x}" == "95a53fc9" and f"{name_hash('hand.L'):08x}" == "ae73a040"
    key = next(k for k in crypto_header("ViewLayer.CryptoMaterial", ["head"]) if k.endswith("/name"))
    assert key == "cryptomatte/c7dbf5e/name"
    assert np.float32(name_id("head")).view(np.uint32) == 0x95a53fc9


def test_an_id_is_never_a_denormal_infinite_or_nan_float():
    import mmh3

    raw = {}
    for i in range(20000):                       # names whose raw hash has an exponent of 0 or 255
        h = mmh3.hash(f"part{i}".encode(), 0, signed=False)
        if (h >> 23) & 255 in (0, 255):
            raw.setdefault((h >> 23) & 255, f"part{i}")
        if len(raw) == 2:
            break
    assert len(raw) == 2
    for name in raw.values():
        x = np.float32(name_id(name))
        assert np.isfinite(x) and abs(x) >= np.finfo(np.float32).tiny
        assert (name_hash(name) ^ mmh3.hash(name.encode(), 0, signed=False)) == 1 << 23


def test_ranks_are_labels_by_their_share_of_the_pixels_samples():
    s = 4
    labels = torch.full((2 * s, 3 * s), -1, dtype=torch.int64)
    p00 = torch.full((s * s,), 2)                    # pixel (0, 0): 10 samples of 2, 6 of 0
    p00[:6] = 0
    labels[:s, :s] = p00.reshape(s, s)
    labels[:s, s:2 * s] = 1                          # pixel (0, 1): all 1
    p12 = torch.full((s * s,), -1)                   # pixel (1, 2): 4 + 4 samples of 5 and 3 (a tie), 8 background
    p12[:4], p12[4:8] = 5, 3
    labels[s:, 2 * s:] = p12.reshape(s, s)
    lab, cov = coverage_ranks(labels, s)
    assert lab.shape == (2, 3, LEVELS) and cov.shape == (2, 3, LEVELS)
    assert lab[0, 0, :2].tolist() == [2, 0] and cov[0, 0, :2].tolist() == [10 / 16, 6 / 16]
    assert lab[0, 1, 0] == 1 and cov[0, 1, 0] == 1 and (lab[0, 1, 1:] == -1).all() and (cov[0, 1, 1:] == 0).all()
    assert lab[1, 2, :2].tolist() == [3, 5] and cov[1, 2, :2].tolist() == [0.25, 0.25]    # a tie: the lower label
    assert (lab[1, 0] == -1).all()                   # nothing there
    names = ["a", "b", "c", "d", "e", "f"]
    ch = crypto_channels("CryptoParts", names, lab, cov)
    assert sorted(ch) == sorted(f"CryptoParts{g:02d}.{c}" for g in range(3) for c in "RGBA")
    assert ch["CryptoParts00.R"][0, 0] == np.float32(name_id("c")) and ch["CryptoParts00.G"][0, 0] == 10 / 16
    assert ch["CryptoParts00.B"][0, 0] == np.float32(name_id("a")) and ch["CryptoParts00.A"][0, 0] == 6 / 16
    assert ch["CryptoParts00.R"][1, 0] == 0 and ch["CryptoParts00.G"][1, 0] == 0
    assert matte(ch, "CryptoParts", ["c"])[0, 0] == 10 / 16
    assert matte(ch, "CryptoParts", ["a", "c"])[0, 0] == 1.0
    assert np.allclose(sum(matte(ch, "CryptoParts", [n]) for n in names), cov.sum(-1).numpy())
    with pytest.raises(ValueError, match="no Cryptomatte layer 'CryptoObject'"):
        matte(ch, "CryptoObject", ["a"])


def test_the_header_declares_the_layer_and_its_manifest():
    h = crypto_header("CryptoParts", ["head", "hand.L"])
    key = f"{name_hash('CryptoParts'):08x}"[:7]
    assert h[f"cryptomatte/{key}/name"] == "CryptoParts" and h[f"cryptomatte/{key}/hash"] == "MurmurHash3_32"
    assert h[f"cryptomatte/{key}/conversion"] == "uint32_to_float32"
    assert json.loads(h[f"cryptomatte/{key}/manifest"]) == {"head": "95a53fc9", "hand.L": "ae73a040"}


def _labelled_band(n_lat=24, n_lon=48, r=0.4):
    """A sphere with its caps cut off in three labelled bands of latitude: top, middle, bottom."""
    th, ph = np.linspace(0.5, np.pi - 0.2, n_lat + 1), np.linspace(0, 2 * np.pi, n_lon + 1)
    T, P = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([r * np.sin(T) * np.sin(P), r * np.cos(T) + 1.0, r * np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    row = np.concatenate([np.repeat(np.arange(n_lat), n_lon)] * 2)
    return v, f, np.minimum(row * 3 // n_lat, 2)


def test_a_shots_cryptomatte_is_what_cycles_writes_for_the_same_mesh(tmp_path):
    """Cycles' CryptoMaterial pass (Blender's own renderer, 64 samples a pixel over a 1 px box) of the same
    labelled mesh and camera: the same manifest, the same first-rank id wherever one label covers a pixel, and
    each label's matte within sampling noise of Cycles' (ours: 4 x 4 samples on a grid)."""
    pytest.importorskip("bpy")
    from capture.camera import Camera
    from doppel.reference_passes import cycles_cryptomatte
    from neural_render.aovs import CRYPTO_LAYER, frame_aovs

    v, f, labels = _labelled_band()
    names = ["brow", "cheek", "jaw.L"]
    c, tgt = np.array([0.5, 1.3, 2.5]), np.array([0.0, 1.0, 0.0])
    z = (tgt - c) / np.linalg.norm(tgt - c)
    x = np.cross(z, [0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    cam = Camera.from_opencv(np.array([[110.0, 0, 40.3], [0, 110.0, 29.8], [0, 0, 1]]), R=R, tvec=-R @ c, width=80,
                             height=60)
    cy, header = cycles_cryptomatte(v, f, labels, names, cam, tmp_path, samples=64)
    manifest = json.loads(next(x for k, x in header.items() if k.endswith("/manifest")))
    assert all(manifest[n] == f"{name_hash(n):08x}" for n in names)
    empty = torch.zeros((1, 2), dtype=torch.float64), torch.zeros((len(f), 3), dtype=torch.int64)
    mine = {k: x.numpy() for k, x in frame_aovs(torch.tensor(v)[None], 0, torch.tensor(f), *empty, cam, ("crypto",),
                                                 face_labels=(torch.tensor(labels), names)).items()}
    whole = (mine[f"{CRYPTO_LAYER}00.G"] == 1.0) & (cy["CryptoMaterial00.g"] > 0.999)
    assert whole.sum() > 500
    assert (mine[f"{CRYPTO_LAYER}00.R"][whole].view(np.uint32) == cy["CryptoMaterial00.r"][whole].view(np.uint32)).all()
    for n in names:
        a, b = matte(mine, CRYPTO_LAYER, [n]), matte(cy, "CryptoMaterial", [n])
        touched = (a > 0) | (b > 0)
        assert touched.sum() > 100 and np.abs(a - b)[touched].mean() < 0.02, n
        assert np.percentile(np.abs(a - b)[touched], 99) < 0.2, n
    alpha = sum(matte(mine, CRYPTO_LAYER, [n]) for n in names)
    assert np.abs(alpha - cy["Combined.A"]).mean() < 0.01


def test_ranks_over_several_times_are_the_same_from_a_stack_or_one_grid_at_a_time():
    """Motion blur's coverage: K grids of labels (the same pixels at K times) ranked together; taken one at a
    time (the grids never all held) they rank as the stack does; one grid ranks as before."""
    rng = np.random.default_rng(3)
    grids = torch.as_tensor(rng.integers(-1, 5, (3, 8, 12)))
    lab, cov = coverage_ranks(grids, 4)
    lab2, cov2 = coverage_ranks(iter(list(grids)), 4, n_labels=5)
    assert torch.equal(lab, lab2) and torch.equal(cov, cov2)
    assert np.allclose(cov.sum(-1).numpy(), ((grids >= 0).float().reshape(3, 2, 4, 3, 4).mean((0, 2, 4))).numpy())
    one, one_cov = coverage_ranks(grids[0], 4)
    assert torch.equal(one, coverage_ranks(grids[:1], 4)[0]) and torch.equal(one_cov, coverage_ranks(grids[:1], 4)[1])
    with pytest.raises(ValueError, match="n_labels"):
        coverage_ranks(iter(list(grids)), 4)
