"""Calibrated landmark regressors: where a 2D detector's landmarks sit on a body model.

A detector's landmark is not a joint centre or a vertex of the model: MediaPipe's "hip" lies lateral of
Anny's hip joint, its face-mesh points are its own surface sampling, its finger points are not Anny's
bone heads. A `LandmarkRegressor` writes each landmark as a convex combination of K model vertices,
x_l = sum_k w_lk v_{i_lk} (w >= 0, sum 1; the SMPL "joint regressor" idea), learned from synthetic
captures: the virtual actor with known phenotype, pose and expression is rendered from 16 views, the
real detector runs on the images (``doppel capture ingest``), its landmarks are triangulated, and a
non-negative least-squares fit over several actors finds the vertex weights that reproduce them
(`fit_regressor`). A combination of vertices moves with shape, pose and expression the way the
landmark does, so the fitter can compare like with like.

Landmark ids (one integer space for every detector set, the ids of `LandmarkSpec`):
MediaPipe pose i -> i (0-32), face mesh i -> 1000 + i (0-477), left hand i -> 2000 + i, right hand
i -> 3000 + i (0-20; the person's own left and right).

The regressor shipped with Doppel (``data/anny_mediapipe_regressor.npz``) is made by
``scripts/calibrate_landmarks.py`` from seeds that no reported benchmark uses; its metadata names them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SET_OFFSETS = {"pose": 0, "face": 1000, "hand.L": 2000, "hand.R": 3000}
SET_SIZES = {"pose": 33, "face": 478, "hand.L": 21, "hand.R": 21}
DEFAULT_PATH = Path(__file__).with_name("data") / "anny_mediapipe_regressor.npz"
SCHEMA = 1


def landmark_set(lid: int) -> str:
    """The set name ('pose', 'face', 'hand.L', 'hand.R') of a landmark id."""
    for name, off in sorted(SET_OFFSETS.items(), key=lambda kv: -kv[1]):
        if lid >= off:
            if lid - off >= SET_SIZES[name]:
                break
            return name
    raise ValueError(f"landmark id {lid} is in no set ({SET_OFFSETS})")


@dataclass(frozen=True)
class LandmarkRegressor:
    """ids (L,) landmark ids; index (L, K) vertex indices; weight (L, K) >= 0, rows sum to 1 (0 = unused
    slot); residual_mm (L,) leave-one-actor-out error of the calibration (NaN where not measured);
    num_vertices: the model's vertex count it was made for; meta: provenance (seeds, model, versions)."""

    ids: np.ndarray
    index: np.ndarray
    weight: np.ndarray
    residual_mm: np.ndarray
    num_vertices: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids) -> np.ndarray:
        """Row of each id; KeyError naming the ids the regressor lacks."""
        pos = {int(i): r for r, i in enumerate(self.ids)}
        missing = [int(i) for i in ids if int(i) not in pos]
        if missing:
            more = "..." if len(missing) > 10 else ""
            raise KeyError(f"the landmark regressor has no landmarks {missing[:10]}{more}")
        return np.array([pos[int(i)] for i in ids], np.int64)

    def apply(self, vertices: np.ndarray) -> np.ndarray:
        """vertices (V, 3) -> (L, 3)."""
        return np.einsum("lk,lkc->lc", self.weight, np.asarray(vertices)[self.index])

    def save(self, path: str | Path) -> None:
        import io

        from core.storage import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, ids=self.ids.astype(np.int32), index=self.index.astype(np.int32),
                            weight=self.weight.astype(np.float32), residual_mm=self.residual_mm.astype(np.float32),
                            num_vertices=np.int64(self.num_vertices),
                            meta=np.frombuffer(json.dumps({"schema": SCHEMA, **self.meta}).encode(), np.uint8))
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> LandmarkRegressor:
        """Read a regressor file; ValueError naming what is wrong."""
        import zipfile

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ValueError(f"{path}: not a readable landmark regressor ({type(e).__name__}: {e})") from e
        need = {"ids", "index", "weight", "residual_mm", "num_vertices", "meta"}
        if not need <= set(d):
            raise ValueError(f"{path}: not a landmark regressor (missing {sorted(need - set(d))})")
        meta = json.loads(bytes(d["meta"]).decode())
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"{path}: regressor schema {meta.get('schema')}, this Doppel reads {SCHEMA}")
        L = len(d["ids"])
        if d["index"].shape != d["weight"].shape or d["index"].shape[0] != L:
            raise ValueError(f"{path}: index {d['index'].shape} and weight {d['weight'].shape} must be (L={L}, K)")
        nv = int(d["num_vertices"])
        if L and (d["index"].min() < 0 or d["index"].max() >= nv):
            raise ValueError(f"{path}: vertex indices outside [0, {nv})")
        return cls(ids=d["ids"].astype(np.int64), index=d["index"].astype(np.int64),
                   weight=d["weight"].astype(np.float64), residual_mm=d["residual_mm"].astype(np.float64),
                   num_vertices=nv, meta=meta)


def default_regressor(model) -> LandmarkRegressor | None:
    """The regressor shipped for ``model`` (Anny only, and only when its vertex count matches); else None."""
    if getattr(model, "name", None) != "anny" or not DEFAULT_PATH.is_file():
        return None
    reg = LandmarkRegressor.load(DEFAULT_PATH)
    return reg if reg.num_vertices == model.num_vertices else None


def _nnls_convex(A: np.ndarray, b: np.ndarray, sum_weight: float = 10.0) -> np.ndarray:
    """min |A w - b|^2 + (sum_weight (1 - sum w))^2 over w >= 0, then normalised to sum 1. A (M, K)."""
    from scipy.optimize import nnls

    Aa = np.vstack([A, np.full((1, A.shape[1]), sum_weight)])
    ba = np.concatenate([b, [sum_weight]])
    w, _ = nnls(Aa, ba, maxiter=50 * A.shape[1])
    s = w.sum()
    return w / s if s > 0 else np.full(A.shape[1], 1.0 / A.shape[1])


def fit_regressor(vertex_sets: list[np.ndarray], targets: list[np.ndarray], ok: list[np.ndarray], ids: np.ndarray,
                  candidates: int = 32, max_weights: int = 8, scale_m: float = 0.01) -> LandmarkRegressor:
    """Calibrate a regressor from A actors.

    vertex_sets: A arrays (V, 3) metres, the ground-truth posed meshes (one topology); targets: A arrays
    (L, 3), the triangulated landmarks in the same frame; ok: A arrays (L,) bool (triangulated and
    trusted); ids (L,) the landmark ids. For each landmark the ``candidates`` vertices nearest to it (summed
    squared distance over the actors) are the basis; weights by non-negative least squares with a soft
    sum-to-one row (coordinates in units of ``scale_m``), the ``max_weights`` largest kept and renormalised.
    residual_mm: leave-one-actor-out error (mean over actors of |regressed - triangulated|), NaN with fewer
    than 3 actors seeing the landmark. Landmarks that no actor has are left out of the result."""
    A = len(vertex_sets)
    if not (A == len(targets) == len(ok)) or A == 0:
        raise ValueError("vertex_sets, targets and ok must be lists of the same non-zero length")
    Vs = np.stack([np.asarray(v, np.float64) for v in vertex_sets]) / scale_m     # (A, V, 3)
    Ts = np.stack([np.asarray(t, np.float64) for t in targets]) / scale_m        # (A, L, 3)
    Ok = np.stack([np.asarray(o, bool) for o in ok])                              # (A, L)
    keep, idx_rows, w_rows, res = [], [], [], []
    for lm in range(Ts.shape[1]):
        seen = np.nonzero(Ok[:, lm])[0]
        if len(seen) == 0:
            continue
        d2 = ((Vs[seen] - Ts[seen, lm][:, None]) ** 2).sum(-1).sum(0)             # (V,)
        cand = np.argsort(d2)[:candidates]

        def solve(actors, cand=cand, lm=lm):
            M = Vs[actors][:, cand].transpose(0, 2, 1).reshape(-1, len(cand))    # (3 * a, K)
            w = _nnls_convex(M, Ts[actors, lm].reshape(-1))
            top = np.argsort(-w)[:max_weights]
            wt = np.zeros_like(w)
            wt[top] = w[top]
            return wt / wt.sum()

        w = solve(seen)
        if len(seen) >= 3:
            errs = []
            for a in seen:
                wl = solve(seen[seen != a])
                errs.append(np.linalg.norm(wl @ Vs[a, cand] - Ts[a, lm]) * scale_m * 1000)
            res.append(float(np.mean(errs)))
        else:
            res.append(float("nan"))
        top = np.argsort(-w)[:max_weights]
        keep.append(lm)
        idx_rows.append(cand[top])
        w_rows.append(w[top])
    return LandmarkRegressor(ids=np.asarray(ids, np.int64)[keep], index=np.asarray(idx_rows, np.int64),
                             weight=np.asarray(w_rows, np.float64), residual_mm=np.asarray(res, np.float64),
                             num_vertices=Vs.shape[1])
