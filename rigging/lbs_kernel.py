"""A fused CPU kernel for linear blend skinning (numba), used by `Rig.pose` when no gradient is needed.

The torch path (rig.py `_lbs`) builds the result from a sparse product and a layout copy: differentiable,
the same code on CPU and CUDA. On the CPU, without autograd, this kernel does the same arithmetic in one pass
per (pose, vertex), in parallel over the batch, and writes the (B, V, 3) result directly:

    v'_bv = sum_k w_vk (A_bj v_bv + t_bj),  j = skin index k of v,  v_bv = bind_v + offset_bv

Tested against the torch path (tests/rigging/test_lbs_kernel.py). numba compiles it on first use (about a
second, then cached on disk). Without numba, `available()` is False and the torch path is used.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba
    from numba import njit, prange

    # OpenMP first (torch uses it too); probing TBB first warns when an older TBB is installed (open3d's).
    # Its runtime is loaded at the first kernel call, after any Doppel import has set OMP_WAIT_POLICY=PASSIVE
    # (core/runtime.py), so its idle threads sleep too. Measured under the passive policy (issue 20), Rig.pose
    # at batch 64 with one of 2 cores busy: omp 1.30-1.82x its idle time, workqueue 1.15-1.33x (same within the
    # noise of a shared machine); omp stays because workqueue aborts the process on concurrent calls.
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
except ImportError:  # pragma: no cover - numba is a dependency; the torch path covers its absence
    numba = None

__all__ = ["available", "lbs"]


def available() -> bool:
    return numba is not None


def _cached_njit(fn, **options):
    """``njit(cache=True)`` when numba can keep the compiled code somewhere, else in a cache folder of this user's
    under the temporary folder, else uncached (compiled in each process, about a second). A user who may not
    write beside the source (a site-wide install) and has no writable home (a render node's account) made numba
    raise "cannot cache function: no locator available" at import, and every command that poses a rig failed."""
    from core.runtime import private_cache_folder

    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError as e:
        if "no locator available" not in str(e):
            raise
    if not numba.config.CACHE_DIR and (folder := private_cache_folder("numba")) is not None:
        numba.config.CACHE_DIR = folder
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:
            pass
    return njit(**options)(fn)


if numba is not None:
    def _lbs_kernel_py(T, idx, w, verts, offs, moved_pos, out):  # pragma: no cover - compiled; tested via lbs()
        B = T.shape[0]
        V = idx.shape[0]
        K = idx.shape[1]
        for b in prange(B):
            for v in range(V):
                x = verts[v, 0]
                y = verts[v, 1]
                z = verts[v, 2]
                m = moved_pos[v]
                if m >= 0:
                    x += offs[m, 0, b]
                    y += offs[m, 1, b]
                    z += offs[m, 2, b]
                ox = 0.0
                oy = 0.0
                oz = 0.0
                for k in range(K):
                    wk = w[v, k]
                    if wk == 0.0:
                        continue
                    j = idx[v, k]
                    ox += wk * (T[b, j, 0, 0] * x + T[b, j, 0, 1] * y + T[b, j, 0, 2] * z + T[b, j, 0, 3])
                    oy += wk * (T[b, j, 1, 0] * x + T[b, j, 1, 1] * y + T[b, j, 1, 2] * z + T[b, j, 1, 3])
                    oz += wk * (T[b, j, 2, 0] * x + T[b, j, 2, 1] * y + T[b, j, 2, 2] * z + T[b, j, 2, 3])
                out[b, v, 0] = ox
                out[b, v, 1] = oy
                out[b, v, 2] = oz

    _lbs_kernel = _cached_njit(_lbs_kernel_py, parallel=True)


def lbs(T: torch.Tensor, skin_idx: np.ndarray, skin_w: np.ndarray, verts: np.ndarray, offsets: torch.Tensor | None,
        moved_pos: np.ndarray) -> torch.Tensor:
    """T (B, J, 3, 4) joint transforms [A | t] (CPU, float32 or float64); skin_idx (V, K) int32, skin_w (V, K)
    and verts (V, 3) in T's dtype; offsets (V_moved, 3, B) or None; moved_pos (V,) int32: row of each vertex
    in offsets, -1 for none -> (B, V, 3) in T's dtype. Threads: torch.get_num_threads() (at most numba's)."""
    B = T.shape[0]
    dt = T.dtype
    Tn = T.detach().contiguous().numpy()
    if offsets is None:
        offs = np.zeros((1, 3, B), Tn.dtype)
        pos = np.full(len(verts), -1, np.int32)
    else:
        offs = offsets.detach().contiguous().numpy()
        pos = moved_pos
    out = np.empty((B, len(verts), 3), Tn.dtype)
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _lbs_kernel(Tn, skin_idx, skin_w, verts, offs, pos, out)
    return torch.from_numpy(out).to(dt)
