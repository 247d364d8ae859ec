"""Synthetic test data for fitting and registration, made from a known mesh (the fitter never reads the
ground truth it is compared with): a remeshed, noisy scan with holes."""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_scan"]


def synthetic_scan(vertices: np.ndarray, faces: np.ndarray, *, seed: int = 0, noise_m: float = 0.002,
                   holes: int = 4, hole_radius_m: float = 0.04, voxel_m: float = 0.006,
                   rigid: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photogrammetry-like scan of the mesh (vertices (V, 3) metres, faces (F, 3)): subdivided once,
    remeshed by open3d vertex clustering at ``voxel_m`` (another topology), Gaussian noise of std
    ``noise_m`` along the normals, ``holes`` spherical holes of ``hole_radius_m`` cut at random surface
    points, then (rigid=True) a random rotation about +Y and a shift of up to 0.5 m.

    Returns (scan_vertices (N, 3), scan_faces (M, 3), transform (4, 4)): the transform maps the input
    mesh's frame onto the scan's (x_scan = T @ x)."""
    import open3d as o3d
    import roma
    import torch
    import trimesh

    rng = np.random.default_rng(seed)
    m = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False).subdivide()
    o = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(m.vertices), o3d.utility.Vector3iVector(m.faces))
    o = o.simplify_vertex_clustering(voxel_size=voxel_m)
    o.remove_degenerate_triangles()
    o.remove_unreferenced_vertices()
    o.compute_vertex_normals()
    v = np.asarray(o.vertices).copy()
    f = np.asarray(o.triangles).astype(np.int64)
    n = np.asarray(o.vertex_normals)
    v = v + n * rng.normal(0.0, noise_m, (len(v), 1))
    keep = np.ones(len(v), bool)
    for c in v[rng.choice(len(v), holes, replace=False)]:
        keep &= np.linalg.norm(v - c, axis=1) > hole_radius_m
    fk = f[keep[f].all(1)]
    used = np.unique(fk)
    remap = -np.ones(len(v), np.int64)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[fk]
    T = np.eye(4)
    if rigid:
        a = rng.uniform(-np.pi, np.pi)
        T[:3, :3] = roma.rotvec_to_rotmat(torch.tensor([0.0, a, 0.0], dtype=torch.float64)).numpy()
        T[:3, 3] = rng.uniform(-0.5, 0.5, 3)
        v = v @ T[:3, :3].T + T[:3, 3]
    return v, f, T
