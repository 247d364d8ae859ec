"""Detail from silhouettes: per-vertex displacements along the normals that make the fitted mesh's outline
match the person masks in every view (what the body model cannot express: clothing, hair volume, a girth
the phenotype misses).

The fitted vertices v stay where they are; each moves by d_i along its (fixed) vertex normal n_i, and d (V,)
minimises, with Adam,

    mean over views and pixels of (soft_silhouette(v + d n) - mask)^2
    + w_smooth * mean((L d)^2) + w_magnitude * mean(d^2)

with L the uniform graph Laplacian (detail.py) and soft_silhouette from neural_render (differentiable at
the outline). Masks are compared at a long side of ``size`` pixels. Only vertices that some view's outline
reaches are observed; the smoothness term carries the displacement a little way into the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from capture.camera import Camera

__all__ = ["DetailConfig", "DetailResult", "silhouette_detail"]


@dataclass
class DetailConfig:
    iterations: int = 60
    size: int = 256              # long side of the compared masks, pixels
    lr: float = 0.004            # Adam step, metres
    sigma: float = 0.7           # soft silhouette outline width, pixels
    w_smooth: float = 1e4        # weight of mean((L d)^2), d in metres
    w_magnitude: float = 1e2     # weight of mean(d^2)


@dataclass(frozen=True)
class DetailResult:
    """displacements (V,) metres along normals (V, 3); observed (V,) bool: vertices the silhouettes reached;
    mask disagreement before / after (fraction of pixels where the hard silhouette and the mask differ);
    seconds."""

    displacements: np.ndarray
    normals: np.ndarray
    observed: np.ndarray
    disagreement_before: float
    disagreement_after: float
    seconds: float

    @property
    def offsets(self) -> np.ndarray:
        return self.normals * self.displacements[:, None]


def _laplacian(faces: np.ndarray, V: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    from reconstruction.detail import uniform_laplacian

    L = uniform_laplacian(faces, V).tocoo()
    idx = torch.as_tensor(np.vstack([L.row, L.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(idx, torch.as_tensor(L.data, dtype=dtype), L.shape,
                                   check_invariants=True).coalesce().to(device)


def silhouette_detail(vertices: np.ndarray, faces: np.ndarray, cameras: Camera, masks: torch.Tensor,
                      config: DetailConfig | None = None,
                      progress: Callable[[int, int, float], None] | None = None) -> DetailResult:
    """vertices (V, 3) metres (the fitted mesh, world frame), faces (F, 3), cameras: a batch of N undistorted
    cameras, masks (N, H, W) in [0, 1] at the cameras' resolution. progress(iteration, total, loss)."""
    import trimesh

    from neural_render import soft_silhouette
    from reconstruction.fitting.optimizer import scaled_views

    cfg = config or DetailConfig()
    if cfg.iterations < 1 or cfg.size < 16:
        raise ValueError(f"detail: iterations must be >= 1 and size >= 16 px, got {cfg.iterations}, {cfg.size}")
    t0 = time.perf_counter()
    dt, dev = torch.float32, cameras.K.device
    cams, m = scaled_views(cameras.to(dtype=dt), masks.to(device=dev), cfg.size)
    m = m.to(dt)
    n_np = np.array(trimesh.Trimesh(vertices, faces, process=False).vertex_normals, np.float64)  # a writable copy
    v0 = torch.as_tensor(vertices, dtype=dt, device=dev)
    n = torch.as_tensor(n_np, dtype=dt, device=dev)
    f = torch.as_tensor(np.asarray(faces, np.int64), device=dev)
    L = _laplacian(np.asarray(faces), len(v0), dt, dev)
    d = torch.zeros(len(v0), dtype=dt, device=dev, requires_grad=True)
    opt = torch.optim.Adam([d], lr=cfg.lr)
    observed = torch.zeros(len(v0), dtype=torch.bool, device=dev)
    before = after = float("nan")
    for it in range(cfg.iterations):
        opt.zero_grad()
        sil = soft_silhouette(v0 + d[:, None] * n, f, cams, sigma=cfg.sigma)
        data = ((sil - m) ** 2).mean()
        if it == 0:
            before = float(((sil.detach() > 0.5) != (m > 0.5)).float().mean())
            (g,) = torch.autograd.grad(data, d, retain_graph=True)
            observed = g != 0
        Ld = torch.sparse.mm(L, d[:, None])[:, 0]
        loss = data + cfg.w_smooth * (Ld ** 2).mean() + cfg.w_magnitude * (d ** 2).mean()
        loss.backward()
        opt.step()
        if progress:
            progress(it + 1, cfg.iterations, float(loss.detach()))
    with torch.no_grad():
        sil = soft_silhouette(v0 + d[:, None] * n, f, cams, sigma=cfg.sigma)
        after = float(((sil > 0.5) != (m > 0.5)).float().mean())
    return DetailResult(displacements=d.detach().double().cpu().numpy(), normals=n_np,
                        observed=observed.cpu().numpy(), disagreement_before=before, disagreement_after=after,
                        seconds=time.perf_counter() - t0)
