"""The Cryptomatte of a shot (`doppel render shot --aovs crypto`, `neural_render.cryptomatte`) against Cycles' own
CryptoMaterial pass of the same mesh, labels and camera: the default double (seed 3), each face a material named by
its body-part region (head, hand.L, eye_front.R, ...), seen full length and in a face close-up.

Prints: whether the two manifests give every name the same id (Blender's MurmurHash3 against `mmh3`); over the
pixels one label covers whole in both, the share whose first-rank id is the same; each region's matte (the keyer's
sum of its ranks) against Cycles' (mean and 99th percentile of the difference, over the pixels either touches); the
summed coverage against Cycles' alpha; and what the pass costs a frame here (Cycles: ``--samples`` a pixel over a
1 px box; Doppel: 4 x 4 samples on a grid).

    PYTHONPATH=. python benchmarks/cryptomatte.py [--size 512] [--samples 64] [--out DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def labelled_double():
    """(V, 3) vertices (frame 1 of `render_passes.moving_double`), faces, (F,) region labels, region names."""
    from render_passes import moving_double

    from doppel.albedo import REGIONS, face_regions

    v, f, uv, fuv = moving_double()
    names = [n for n, _ in sorted(REGIONS.items(), key=lambda kv: kv[1])]
    return v[1], f, np.asarray(face_regions(uv, fuv), np.int64), names


def compare(mine: dict, cy: dict, names: list[str]) -> dict:
    from neural_render.aovs import CRYPTO_LAYER
    from neural_render.cryptomatte import matte

    whole = (mine[f"{CRYPTO_LAYER}00.G"] == 1.0) & (cy["CryptoMaterial00.g"] > 0.999)
    same = mine[f"{CRYPTO_LAYER}00.R"][whole].view(np.uint32) == cy["CryptoMaterial00.r"][whole].view(np.uint32)
    per = {}
    for n in names:
        a, b = matte(mine, CRYPTO_LAYER, [n]), matte(cy, "CryptoMaterial", [n])
        touched = (a > 0) | (b > 0)
        if touched.sum() >= 20:
            d = np.abs(a - b)[touched]
            per[n] = (int(touched.sum()), float(d.mean()), float(np.percentile(d, 99)))
    alpha = sum(matte(mine, CRYPTO_LAYER, [n]) for n in names)
    edge = (cy["Combined.A"] > 0) | (alpha > 0)
    return {"whole_pixels": int(whole.sum()), "same_id": float(same.mean()) if whole.any() else float("nan"),
            "regions": per, "alpha_mean_abs": float(np.abs(alpha - cy["Combined.A"])[edge].mean())}


def main() -> None:
    import core  # noqa: F401, I001 - before torch: OpenMP's passive wait policy (core/runtime.py)
    import torch

    from doppel.reference_passes import cycles_cryptomatte
    from neural_render.aovs import frame_aovs
    from neural_render.cryptomatte import name_hash
    from render_passes import size_and_out, two_views

    args, out = size_and_out(__doc__, "cryptomatte_", samples=(int, 64))
    v, f, labels, names = labelled_double()
    views = two_views(v, args.size)
    vt, ft = torch.as_tensor(v)[None], torch.as_tensor(f)
    empty = torch.zeros((1, 2), dtype=torch.float64), torch.zeros_like(ft)
    for view, cam in views.items():
        t0 = time.perf_counter()
        cy, header = cycles_cryptomatte(v, f, labels, names, cam, out, args.samples)
        cycles_s = time.perf_counter() - t0
        manifest = json.loads(next(x for k, x in header.items() if k.endswith("/manifest")))
        agree = sum(manifest.get(n) == f"{name_hash(n):08x}" for n in names)
        frame_aovs(vt, 0, ft, *empty, cam, ("crypto",), face_labels=(torch.as_tensor(labels), names))   # warm
        t0 = time.perf_counter()
        mine = {k: x.numpy() for k, x in frame_aovs(vt, 0, ft, *empty, cam, ("crypto",),
                                                     face_labels=(torch.as_tensor(labels), names)).items()}
        mine_s = time.perf_counter() - t0
        r = compare(mine, cy, names)
        print(f"{view} ({args.size} px): manifest ids agree for {agree} of {len(names)} names; first-rank id the "
              f"same on {100 * r['same_id']:.3f} % of {r['whole_pixels']} whole pixels; coverage sum vs alpha "
              f"{r['alpha_mean_abs']:.4f} mean abs; crypto pass {1e3 * mine_s:.0f} ms, Cycles {cycles_s:.1f} s "
              f"({args.samples} samples, worker start included)")
        for n, (px, mean, p99) in sorted(r["regions"].items(), key=lambda kv: -kv[1][0]):
            print(f"  {n:<14} {px:>7} px  matte |diff| mean {mean:.4f}  p99 {p99:.4f}")


if __name__ == "__main__":
    main()
