"""Tiny synthetic scenes for the neural-double tests: a UV sphere with a painted albedo, photographed by a ring
of cameras under a light that follows the camera and a view-dependent specular highlight (something a baked
texture cannot reproduce)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tf

from capture import Camera
from neural_render.gbuffer import gbuffer
from neural_render.texture import linear_to_srgb, sample_texture

BACKDROP = 0.3   # linear grey behind the sphere


def uv_sphere(n_lat: int = 12, n_lon: int = 24, radius: float = 0.5):
    """(verts (V, 3), faces (F, 3), uvs (V, 2) v up, face_uvs (F, 3) = faces): a lat-long sphere, seam duplicated."""
    lat = torch.linspace(0, math.pi, n_lat + 1, dtype=torch.float64)
    lon = torch.linspace(0, 2 * math.pi, n_lon + 1, dtype=torch.float64)
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    verts = torch.stack([torch.sin(la) * torch.sin(lo), torch.cos(la), torch.sin(la) * torch.cos(lo)], -1)
    uvs = torch.stack([lo / (2 * math.pi), 1 - la / math.pi], -1)
    idx = torch.arange((n_lat + 1) * (n_lon + 1)).view(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return (verts * radius).float().reshape(-1, 3), faces, uvs.float().reshape(-1, 2), faces.clone()


def albedo_texture(size: int = 64) -> torch.Tensor:
    """(size, size, 3) linear albedo: smooth colour bands and a checker, so misplaced texels show."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    checker = ((torch.floor(x * 8) + torch.floor(y * 4)) % 2) * 0.25
    return torch.stack([0.25 + 0.5 * x, 0.2 + 0.5 * y + checker * 0.5, 0.5 - 0.3 * x + checker], -1).clamp(0, 1)


def ring_cameras(n: int = 8, size: int = 64, distance: float = 2.0) -> Camera:
    """n cameras on a ring around the origin (slightly above it), looking at it."""
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = (distance * math.sin(a), 0.3 + 0.2 * (i % 2), distance * math.cos(a))
        cams.append(Camera.look_at(eye, (0.0, 0.0, 0.0), width=size, height=size, fov_y_deg=35.0, name=f"cam{i}"))
    return Camera.stack(cams)


def photograph(verts, faces, uvs, face_uvs, cameras: Camera, albedo: torch.Tensor, specular: float = 0.6):
    """(images (N, H, W, 3) sRGB over the backdrop, masks (N, H, W) bool): Lambert from a light at the camera plus
    a Blinn-Phong highlight (exponent 20) that moves with the viewpoint."""
    with torch.no_grad():
        g = gbuffer(verts, faces, uvs, face_uvs, cameras)
        alb = sample_texture(g.uv, albedo, mask=g.mask)
        to_eye = -g.view_dir
        light = tf.normalize(to_eye + torch.tensor([0.3, 0.4, 0.0]), dim=-1)
        half = tf.normalize(light + to_eye, dim=-1)
        diff = (g.normal * light).sum(-1, keepdim=True).clamp_min(0)
        spec = (g.normal * half).sum(-1, keepdim=True).clamp_min(0) ** 20
        lin = alb * (0.25 + 0.75 * diff) + specular * spec
        m = g.mask[..., None]
        img = torch.where(m, lin, torch.full_like(lin, BACKDROP))
    return linear_to_srgb(img), g.mask


def small_training_views(supersample: int = 2, seed: int = 0):
    """(NeuralDouble, TrainViews) of a tiny model on 4 views of the sphere at 48 px (3 trained, 1 held out)."""
    from neural_render.neural_double import NeuralDouble, NeuralDoubleConfig
    from neural_render.training import prepare_views

    torch.manual_seed(0)
    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(4, 48)
    imgs, masks = photograph(v, f, uv, fuv, cams, albedo_texture(32))
    cfg = NeuralDoubleConfig(channels=4, texture_size=32, levels=2, width=8, depth=2, supersample=supersample,
                             cameras=["a", "b", "c"])
    m = NeuralDouble(cfg, f, uv, fuv, v, albedo_texture(32), seed=seed)
    views = prepare_views(m, v[None].expand(4, -1, -1), cams, imgs, masks.float(), torch.tensor([0, 1, 2, -1]),
                          None, [f"0/{i}" for i in range(4)])
    return m, views
