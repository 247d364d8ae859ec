"""A pure-PyTorch triangle rasterizer (CPU and CUDA, no compiled extension) with perspective-correct
barycentrics, exact z-near clipping and differentiable G-buffers.

How it works (``rasterize``):

1. Vertices go to camera space (OpenCV: x right, y down, z forward). For every (view, face) the
   triangle's plane gives three *homogeneous edge functions*: for the ray ``d = K^-1 (u, v, 1)`` through
   pixel (u, v), ``N_i(d) = r_i . d`` with ``r_i = P_{i+1} x P_{i+2}`` (computed as
   ``P_{i+1} x (P_{i+2} - P_{i+1})`` for precision; Moeller-Trumbore in closed form). The ray hits the
   triangle at perspective-correct barycentrics ``b_i = N_i / D`` with ``D = N_0 + N_1 + N_2`` and at
   depth ``z = (P0 . n) / D``, ``n = (P1 - P0) x (P2 - P0)``. These are linear in (u, v), valid for
   any vertex depth (2D homogeneous rasterization, Olano & Greer 1997),
   so a triangle crossing the near plane needs no re-triangulation: a pixel is covered iff all
   ``N_i >= 0`` (signs normalised per face), ``D > 0`` and ``z >= near``. The screen bounding box of such
   a triangle is that of its polygon clipped to ``z >= near`` in camera space (vertices in front plus
   the edge/near-plane intersections), so the work is bounded and nothing behind the camera leaks in.
2. Work items (view, face, tile) are binned by the size of their bounding box (``SIZE_CLASSES`` along x
   and y; big triangles are cut into 32 x 32 tiles; sparse bins are merged into square ones); each bin
   is evaluated densely as (items, h, w) tensors in chunks of at most ``max_candidates`` pixel
   candidates, so memory stays bounded at any resolution. Only bins of triangles that reach the
   near or far plane pay for the per-pixel depth-range test.
3. The z-buffer is resolved with one ``scatter_reduce(amax)`` of 64-bit keys ``(bits(1/z) << 32) | face``
   (positive float32 bits order like the floats; candidates outside the triangle get a negative 1/z), so
   the nearest face wins in one pass (ties: the larger face index).
4. Barycentrics and depth of the winning face are recomputed at the covered pixels from the vertices
   with autograd on (in chunks when autograd is off), so ``Fragments.bary`` and ``Fragments.depth`` are
   differentiable w.r.t. vertex positions (and R, t).

The reference for all this is a brute-force rasterizer (every pixel against every face) in the tests.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from capture.camera import Camera
from core.conventions import PIXEL_CENTER_OFFSET
from neural_render.fragments import Fragments

log = logging.getLogger(__name__)

__all__ = ["Fragments", "rasterize", "check_mesh", "prepare_views", "fragments_for_faces", "full_precision"]

TILE = 32                     # big triangles are cut into TILE x TILE pixel tiles
DEFAULT_MAX_CANDIDATES = 1 << 21  # pixel candidates evaluated at once (bounds memory: ~60 bytes each)


def full_precision(fn):
    """Run ``fn`` with autocast off on every device: geometry (camera transforms, pixel coordinates, barycentrics,
    interpolated UVs) stays in the dtype of its inputs even when called inside a mixed-precision region. Under
    CUDA's bfloat16 autocast the matrix products would round camera-space points and pixel coordinates to 8
    significant bits (4-8 px apart at 1024 px): blocky UVs and holes in the mask (2026-12-04, H200)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            return fn(*args, **kwargs)
    return wrapped


def check_mesh(verts: Tensor, faces: Tensor, what: str = "mesh") -> tuple[Tensor, Tensor]:
    """Validate a mesh at a public boundary; returns (verts, faces as int64 on verts' device).

    verts (V, 3) or (B, V, 3) float; faces (F, 3) integer indices in [0, V). Raises ValueError naming
    what is wrong: wrong shapes, an empty mesh, NaN/inf vertices, face indices out of range.
    """
    if not isinstance(verts, Tensor):
        raise ValueError(f"{what}: verts must be a torch.Tensor, got {type(verts).__name__}")
    if not isinstance(faces, Tensor):
        raise ValueError(f"{what}: faces must be a torch.Tensor, got {type(faces).__name__}")
    if verts.dim() not in (2, 3) or verts.shape[-1] != 3:
        raise ValueError(f"{what}: verts must be (V, 3) or (B, V, 3), got {tuple(verts.shape)}")
    if not verts.is_floating_point():
        raise ValueError(f"{what}: verts must be floating point, got {verts.dtype}")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"{what}: faces must be (F, 3) triangles, got {tuple(faces.shape)}")
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise ValueError(f"{what}: faces must be integer indices, got {faces.dtype}")
    V = verts.shape[-2]
    if V == 0 or faces.shape[0] == 0 or (verts.dim() == 3 and verts.shape[0] == 0):
        raise ValueError(f"{what}: empty mesh ({V} vertices, {faces.shape[0]} faces)")
    if not bool(torch.isfinite(verts.detach()).all()):
        bad = (~torch.isfinite(verts.detach())).any(-1).nonzero()[:3].tolist()
        raise ValueError(f"{what}: verts contain NaN or infinite values (first at index {bad})")
    faces = faces.to(device=verts.device, dtype=torch.int64)
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= V:
        row = int(((faces < 0) | (faces >= V)).any(-1).nonzero()[0])
        raise ValueError(f"{what}: face indices must be in [0, {V}) (the vertex count), got min {lo}, max {hi}; "
                         f"first bad face {row}: {faces[row].tolist()}")
    return verts, faces


def prepare_views(verts: Tensor, cameras: Camera) -> tuple[Tensor, Camera]:
    """Broadcast a mesh (batch) against a camera (batch): returns (verts_cam (B, V, 3), cameras batch of B).

    verts (V, 3) with N cameras -> B = N views of one mesh; verts (B, V, 3) with 1 or B cameras -> B views,
    view b of mesh b. Camera-space coordinates are differentiable w.r.t. verts and R, t.
    """
    if not isinstance(cameras, Camera):
        raise ValueError(f"cameras must be a capture.Camera, got {type(cameras).__name__}")
    cams = cameras.as_batch().to(device=verts.device, dtype=verts.dtype)
    N = len(cams)
    if verts.dim() == 3:
        B = verts.shape[0]
        if N not in (1, B):
            raise ValueError(f"{B} meshes but {N} cameras: give 1 camera or one per mesh")
        if N == 1 and B > 1:
            cams = Camera.stack([cams] * B)
        pc = verts @ cams.R.transpose(-1, -2) + cams.t[:, None, :]
    else:
        pc = verts[None] @ cams.R.transpose(-1, -2) + cams.t[:, None, :]
    return pc, cams


# Bin sizes (pixels) of work items along x and y: a box of w pixels goes to the smallest size >= w.
SIZE_CLASSES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
# Bins with fewer work items than this are merged into square bins (more padded pixels, fewer operations). On a GPU
# each operation's launch costs more than the padding's arithmetic: on an H200 (2026-12-04) a 2048^2 G-buffer's
# rasterization of the virtual actor took 9.75 ms at 256, 5.79 at 1024, 5.77 at 4096, 5.68 at 16384. On a GPU the
# threshold is per view rasterized in the call: views drawn together (a shot's frames, `neural_render.shot`) fill
# every size class, and merged by a fixed count they would keep eight times the bins of one view and its launches.
MIN_BIN_ITEMS = {"cpu": 256, "other": 1024}
LITTLE_ENDIAN = sys.byteorder == "little"   # z-buffer keys are built from two int32 words (``_scatter_keys``)


def _face_planes(pc: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """Per (view, face) homogeneous edge functions in camera space (differentiable).

    pc (B, V, 3) camera space, faces (F, 3) -> rows (B, F, 3, 3) with ``rows[..., i, :] = P_{i+1} x P_{i+2}``
    (written ``P_{i+1} x (P_{i+2} - P_{i+1})`` for precision) and T (B, F) = ``P0 . ((P1 - P0) x (P2 - P0))``.
    For a ray d (z = 1), ``N_i = rows_i . d``, ``D = sum_i N_i``: barycentrics ``N_i / D``, depth ``T / D``.
    """
    tri = pc[:, faces]                              # (B, F, 3 vertices, 3)
    nxt = tri.roll(-1, 2)                           # P1, P2, P0
    rows = torch.linalg.cross(nxt, tri.roll(-2, 2) - nxt)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    T = (tri[:, :, 0] * n).sum(-1)
    return rows, T


@torch.no_grad()
def _face_setup(pc: Tensor, faces: Tensor, rows: Tensor, T: Tensor, K: Tensor, H: int, W: int, near: float,
                far: float, cull_backfaces: bool):
    """Per (view, face): edge-function coefficients in pixel coordinates and pixel bounding boxes.

    pc (B, V, 3) camera space, rows/T from ``_face_planes``; returns flat per-item tensors for the faces
    that may cover a pixel.
    """
    B, F = T.shape
    dev, dt = pc.device, pc.dtype
    z = pc[..., 2]                                  # (B, V)
    q = pc @ K.transpose(-1, -2)                    # (B, V, 3) homogeneous pixels
    uvz = torch.cat([q[..., :2] / torch.where(z >= near, z, torch.ones_like(z))[..., None], z[..., None]], -1)
    uvzf = uvz[:, faces]                            # (B, F, 3, 3): u, v, z of each corner
    zf = uvzf[..., 2]
    front = zf >= near
    n_front = front.sum(-1)
    keep = n_front > 0
    keep &= T.abs() > 1e-12 * rows.detach().abs().amax((-1, -2))  # plane through the camera: edge-on
    if cull_backfaces:
        keep &= T < 0                               # front-facing: normal towards the camera
    if far < float("inf"):
        keep &= (zf <= far).any(-1)
    uvf = uvzf[..., :2]
    umin, umax = uvf.amin(2), uvf.amax(2)           # exact for faces entirely in front of the near plane
    crossing = (keep & (n_front < 3)).nonzero()
    if crossing.numel():
        # Bounding box of the polygon clipped to z >= near: vertices in front + edge / near crossings.
        cb, cf = crossing[:, 0], crossing[:, 1]
        tri = pc[cb[:, None], faces[cf]].double()   # (c, 3, 3)
        zt = tri[..., 2]
        pts, ok = [tri], [zt >= near]
        for i, j in ((0, 1), (1, 2), (2, 0)):
            zi, zj = zt[:, i], zt[:, j]
            cross = (zi >= near) != (zj >= near)
            s = ((near - zi) / torch.where(cross, zj - zi, torch.ones_like(zi))).clamp(0, 1)
            pts.append((tri[:, i] + s[:, None] * (tri[:, j] - tri[:, i]))[:, None])
            ok.append(cross[:, None])
        pts, ok = torch.cat(pts, 1), torch.cat(ok, 1)           # (c, 6, 3), (c, 6)
        pz = torch.where(ok, pts[..., 2].clamp_min(near), torch.ones_like(pts[..., 2]))
        qq = pts @ K.double()[cb].transpose(-1, -2)
        uv = qq[..., :2] / pz[..., None]
        big = torch.tensor(1e30, dtype=torch.float64, device=dev)
        umin[cb, cf] = torch.where(ok[..., None], uv, big).amin(1).clamp(-1e6, 1e6).to(dt)
        umax[cb, cf] = torch.where(ok[..., None], uv, -big).amax(1).clamp(-1e6, 1e6).to(dt)
    eps = 1e-3
    lim = torch.tensor([W + 1.0, H + 1.0], dtype=dt, device=dev)
    lo = torch.ceil((umin - (PIXEL_CENTER_OFFSET + eps)).clamp(-1.0, None).minimum(lim)).long().clamp_min(0)
    hi = torch.floor((umax - (PIXEL_CENTER_OFFSET - eps)).clamp(-1.0, None).minimum(lim)).long()
    hi = torch.minimum(hi, torch.tensor([W - 1, H - 1], device=dev))
    keep &= (hi >= lo).all(-1)
    idx = keep.reshape(-1).nonzero()[:, 0]          # flat (view, face) ids
    view = idx // F
    face = idx % F
    # Edge functions in pixel coordinates: N_i(u, v) = (rows_i K^-1) . (u, v, 1), signs so that T > 0.
    Kinv = torch.linalg.inv(K.double())             # (B, 3, 3)
    Ts = T.reshape(-1)[idx].double()
    Ki = Kinv[0] if B == 1 else Kinv[view]
    coef = (rows.reshape(B * F, 3, 3)[idx].double() @ Ki) * torch.sign(Ts)[:, None, None]
    lo = lo.reshape(B * F, 2)[idx]
    hi = hi.reshape(B * F, 2)[idx]
    clip = n_front < 3                              # needs the per-pixel near test
    if far < float("inf"):
        clip |= (zf > far).any(-1)
    return view, face, coef, 1.0 / Ts.abs(), lo, hi - lo + 1, clip.reshape(-1)[idx]


@dataclass(frozen=True)
class _Items:
    """Work items of the z-buffer pass (one per (view, face) box or per TILE x TILE tile of a big box), as
    flat vectors of n items: view, face (int64), coef (n, 3, 3) float64 edge functions in pixels, invT (n,)
    float64, lo (n, 2) first pixel (x, y), size (n, 2) box width and height in pixels, clip (n,) bool (needs
    the per-pixel near/far test)."""

    view: Tensor
    face: Tensor
    coef: Tensor
    invT: Tensor
    lo: Tensor
    size: Tensor
    clip: Tensor

    def take(self, i: Tensor) -> _Items:
        return _Items(self.view[i], self.face[i], self.coef[i], self.invT[i], self.lo[i], self.size[i], self.clip[i])


def _cut_into_tiles(items: _Items) -> _Items:
    """Cut boxes bigger than TILE x TILE pixels into tiles (one item per tile; small boxes are unchanged)."""
    ntile = (items.size + TILE - 1) // TILE                 # (n, 2)
    count = ntile[:, 0] * ntile[:, 1]
    if not bool((count > 1).any()):
        return items
    dev = items.face.device
    item = torch.repeat_interleave(torch.arange(items.face.numel(), device=dev), count)
    start = torch.cumsum(count, 0) - count
    k = torch.arange(item.numel(), device=dev) - start[item]
    off = torch.stack([k % ntile[item, 0], k // ntile[item, 0]], -1) * TILE
    tiles = items.take(item)
    return _Items(tiles.view, tiles.face, tiles.coef, tiles.invT, tiles.lo + off, (tiles.size - off).clamp_max(TILE),
                  tiles.clip)


def min_bin_items(device: torch.device, views: int = 1) -> int:
    """Work items below which a size bin is merged into a square one (``MIN_BIN_ITEMS``): the CPU's count, or a
    GPU's per view of the ``views`` rasterized in one call."""
    return MIN_BIN_ITEMS["cpu"] if device.type == "cpu" else MIN_BIN_ITEMS["other"] * max(1, views)


def _bin_by_size(items: _Items, views: int = 1) -> tuple[Tensor, list[int], list[int]]:
    """Bin items by the size classes of their boxes (x, y; clipped items apart); small bins merge into square
    ones (``MIN_BIN_ITEMS``; on a GPU per view of the ``views`` rasterized). Returns (order: the items sorted by
    bin, bin keys, item counts per bin)."""
    classes = torch.tensor(SIZE_CLASSES, device=items.face.device)
    cls = torch.searchsorted(classes, items.size)          # (m, 2) class index along x, y
    nc = len(SIZE_CLASSES)
    clip = items.clip.long()
    key = (clip * nc + cls[:, 0]) * nc + cls[:, 1]
    # Small bins cost more in dispatch than they save in padding: promote them to square bins.
    least = min_bin_items(items.face.device, views)
    small = torch.bincount(key, minlength=2 * nc * nc)[key] < least
    if bool(small.any()):
        sq = cls.amax(1)
        key = torch.where(small, (clip * nc + sq) * nc + sq, key)
    order = torch.argsort(key)
    bins, counts = torch.unique_consecutive(key[order], return_counts=True)
    return order, bins.tolist(), counts.tolist()


def _linear_forms(items: _Items, Hp: int, Wp: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-item linear forms in local pixel coordinates (x - x0, y - y0) of the item's first pixel centre:
    the three edge functions N_i and 1/z = D / T with D = N_0 + N_1 + N_2 (constants in float64, then
    float32). Returns Ax, Ay, C (4, m, 1, 1) float32 (value = Ax * x + Ay * y + C), the face index (m, 1, 1) int32
    and the flat z-buffer index of the first pixel (m, 1, 1)."""
    org = items.lo.to(torch.float64) + PIXEL_CENTER_OFFSET
    forms = torch.cat([items.coef, items.coef.sum(1, keepdim=True) * items.invT[:, None, None]], 1)   # (m, 4, 3)
    const = forms[..., 0] * org[:, None, 0] + forms[..., 1] * org[:, None, 1] + forms[..., 2]
    f32 = torch.float32
    Ax = forms[..., 0].to(f32).T.contiguous()[..., None, None]
    Ay = forms[..., 1].to(f32).T.contiguous()[..., None, None]
    Cc = const.to(f32).T.contiguous()[..., None, None]
    base = ((items.view * Hp + items.lo[:, 1]) * Wp + items.lo[:, 0])[:, None, None]
    return Ax, Ay, Cc, items.face.to(torch.int32)[:, None, None], base


@dataclass
class _Grid:
    """Local pixel coordinates of the largest bin box, sliced (no copy) by every bin: x (TILE,) and y (TILE, 1)
    float32, offset (TILE, TILE) int64 = y * Wp + x in the padded z-buffer."""
    x: Tensor
    y: Tensor
    offset: Tensor

    @staticmethod
    def make(Wp: int, device) -> _Grid:
        r = torch.arange(TILE, device=device)
        return _Grid(r.float(), r.float()[:, None], r[:, None] * Wp + r)


def _scatter_keys(buf: Tensor, Ax: Tensor, Ay: Tensor, Cc: Tensor, face: Tensor, base: Tensor, grid: _Grid, cw: int,
                  ch: int, needs_clip: bool, inv_near: float, inv_far: float) -> None:
    """Numeric kernel: evaluate n items of one bin on their cw x ch pixel boxes and ``amax`` their 64-bit keys
    ``(bits(1/z) << 32) | face`` into the z-buffer ``buf``; pixels outside a triangle (or its near/far range)
    get a negative key, which loses against the empty 0. Few, large operations (about ten kernels a call: on a
    GPU the rasterizer waits on launches, not arithmetic)."""
    lin = torch.addcmul(Cc, Ax, grid.x[:cw])                  # (4, n, 1, cw)
    val = torch.addcmul(lin, Ay, grid.y[:ch])                 # (4, n, ch, cw): N_0, N_1, N_2, 1 / z
    mn = val[:3].amin(0)                                      # (n, ch, cw) >= 0 inside the triangle
    iz = val[3]
    if needs_clip:                                            # z >= near and z <= far
        torch.minimum(mn, inv_near - iz, out=mn)
        if inv_far > 0:
            torch.minimum(mn, iz - inv_far, out=mn)
    iz.copysign_(mn)
    if LITTLE_ENDIAN:   # the key's words side by side (low word first) read as one int64: one operation
        k = torch.stack([face.expand_as(mn), iz.view(torch.int32)], -1).view(torch.int64)
    else:
        k = iz.view(torch.int32).to(torch.int64).bitwise_left_shift_(32).bitwise_or_(face.to(torch.int64))
    buf.scatter_reduce_(0, (base + grid.offset[:ch, :cw]).reshape(-1), k.reshape(-1), reduce="amax")


@torch.no_grad()
def _rasterize_face_idx(pc: Tensor, faces: Tensor, rows: Tensor, T: Tensor, K: Tensor, H: int, W: int,
                        near: float, far: float, cull_backfaces: bool, max_candidates: int):
    """(B, V, 3) camera-space vertices -> (face_idx (B, H, W) int64, -1 = background; covered pixels as
    (b, y, x, face) int64 vectors in row-major order). Steps: face set-up, tiles, size bins, linear forms,
    one z-buffer pass per bin (in chunks of at most max_candidates pixels), resolve."""
    B = pc.shape[0]
    dev = pc.device
    items = _Items(*_face_setup(pc, faces, rows, T, K, H, W, near, far, cull_backfaces))
    if items.face.numel() == 0:
        e = torch.zeros(0, dtype=torch.int64, device=dev)
        return torch.full((B, H, W), -1, dtype=torch.int64, device=dev), (e, e, e, e)
    # The z-buffer has TILE pixels of padding right and below each view: a bin's padded box never wraps.
    Wp, Hp = W + TILE, H + TILE
    buf = torch.zeros(B * Hp * Wp, dtype=torch.int64, device=dev)
    items = _cut_into_tiles(items)
    order, bins, counts = _bin_by_size(items, B)
    Ax, Ay, Cc, face_s, base_s = _linear_forms(items.take(order), Hp, Wp)
    inv_near = 1.0 / near
    inv_far = 1.0 / far if far < float("inf") else 0.0
    nc = len(SIZE_CLASSES)
    grid = _Grid.make(Wp, dev)
    pos = 0
    for b, c in zip(bins, counts, strict=True):
        cw, ch = SIZE_CLASSES[(b // nc) % nc], SIZE_CLASSES[b % nc]
        per = max(1, max_candidates // (cw * ch))
        for a in range(pos, pos + c, per):
            s = slice(a, min(a + per, pos + c))
            _scatter_keys(buf, Ax[:, s], Ay[:, s], Cc[:, s], face_s[s], base_s[s], grid, cw, ch, b >= nc * nc,
                          inv_near, inv_far)
        pos += c
    # Keys of covered pixels have the bits of 1/z > 0 in the high word; the rest are 0 or negative.
    buf = buf.view(B, Hp, Wp)[:, :H, :W]
    bi, yi, xi = (buf >= (1 << 32)).nonzero(as_tuple=True)
    fi = buf[bi, yi, xi] & 0xFFFFFFFF
    face_idx = torch.full((B, H, W), -1, dtype=torch.int64, device=dev).index_put_((bi, yi, xi), fi)
    return face_idx, (bi, yi, xi, fi)


def _barycentrics(rows: Tensor, T: Tensor, Kinv: Tensor, shape: tuple[int, int, int], covered,
                  chunk: int = DEFAULT_MAX_CANDIDATES) -> tuple[Tensor, Tensor]:
    """Differentiable perspective-correct barycentrics and depth of the given face at the covered pixels.

    rows (B, F, 3, 3), T (B, F) from ``_face_planes`` (autograd on), Kinv (B, 3, 3) (last row 0, 0, 1),
    shape (B, H, W), covered = (b, y, x, face) int64 vectors -> bary (B, H, W, 3) (0 on background),
    depth (B, H, W) (inf on background).
    """
    B, H, W = shape
    dt, dev = rows.dtype, rows.device
    bi, yi, xi, face = covered
    bary = torch.zeros(B, H, W, 3, dtype=dt, device=dev)
    depth = torch.full((B, H, W), float("inf"), dtype=dt, device=dev)
    M = bi.numel()
    if torch.is_grad_enabled() and (rows.requires_grad or T.requires_grad):
        bv, z = _bary_at(rows, T, Kinv, bi, yi, xi, face)
        return bary.index_put((bi, yi, xi), bv), depth.index_put((bi, yi, xi), z)
    for a in range(0, M, chunk):                              # no autograd: bounded working memory
        s = slice(a, a + chunk)
        bv, z = _bary_at(rows, T, Kinv, bi[s], yi[s], xi[s], face[s])
        bary.index_put_((bi[s], yi[s], xi[s]), bv)
        depth.index_put_((bi[s], yi[s], xi[s]), z)
    return bary, depth


def _bary_at(rows: Tensor, T: Tensor, Kinv: Tensor, bi: Tensor, yi: Tensor, xi: Tensor, face: Tensor):
    """Barycentrics (M, 3) and depth (M,) of face ``face`` of view ``bi`` at pixel centres (xi, yi)."""
    B, F = T.shape
    dt = rows.dtype
    u = xi.to(dt) + PIXEL_CENTER_OFFSET
    v = yi.to(dt) + PIXEL_CENTER_OFFSET
    Ki = Kinv.to(dt)
    if B == 1:
        dx = Ki[0, 0, 0] * u + (Ki[0, 0, 1] * v + Ki[0, 0, 2])
        dy = Ki[0, 1, 1] * v + Ki[0, 1, 2]
        fid = face
    else:
        kb = Ki[bi]
        dx = kb[:, 0, 0] * u + kb[:, 0, 1] * v + kb[:, 0, 2]
        dy = kb[:, 1, 1] * v + kb[:, 1, 2]
        fid = bi * F + face
    r = rows.reshape(B * F, 9)[fid]                           # (M, 9)
    N = r[:, 0::3] * dx[:, None] + r[:, 1::3] * dy[:, None] + r[:, 2::3]   # ray d = (dx, dy, 1)
    D = N.sum(-1, keepdim=True)
    return N / D, T.reshape(-1)[fid] / D[:, 0]


@full_precision
def rasterize(verts: Tensor, faces: Tensor, cameras: Camera, *, near: float = 0.01, far: float = float("inf"),
              cull_backfaces: bool = False, max_candidates: int = DEFAULT_MAX_CANDIDATES,
              backend: str = "torch") -> Fragments:
    """Rasterize a mesh (or a batch of meshes of one topology) into B views.

    verts: (V, 3) world metres, seen by every camera of ``cameras`` (B = number of cameras), or (B, V, 3)
        B meshes, each seen by its own camera (or all by one camera).
    faces: (F, 3) int vertex indices; faces counter-clockwise seen from outside (front faces).
    cameras: a ``capture.Camera`` (single or batch); pinhole model: a camera with non-zero distortion is
        refused (render with ``cameras.undistorted()`` and distort the image, or undistort your photos).
    near, far: clipping planes, camera z in metres (near > 0). Triangles crossing the near plane are
        clipped exactly (see the module docstring).
    cull_backfaces: drop faces whose normal points away from the camera.
    max_candidates: pixel candidates evaluated at once (on a GPU, per view: views drawn together keep one
        view's launches); bounds the working memory (~60 bytes each).
    backend: "torch" (this module) or "pytorch3d" (only if pytorch3d is importable; same Fragments).

    Returns ``Fragments`` with (B, H, W) fields; ``bary`` and ``depth`` are differentiable w.r.t. verts
    and cameras' R, t; ``face_idx`` is not (it is discrete).
    """
    verts, faces = check_mesh(verts, faces)
    if not near > 0:
        raise ValueError(f"rasterize: near must be > 0 metres, got {near}")
    if not far > near:
        raise ValueError(f"rasterize: far ({far}) must be > near ({near})")
    if max_candidates < 1:
        raise ValueError(f"rasterize: max_candidates must be >= 1, got {max_candidates}")
    if isinstance(cameras, Camera) and cameras.has_distortion:
        raise ValueError("rasterize: the camera has lens distortion; the rasterizer is pinhole - pass "
                         "cameras.undistorted() (and distort the rendered image if you need to)")
    pc, cams = prepare_views(verts, cameras)
    H, W = cams.height, cams.width
    if backend == "pytorch3d":
        from neural_render.p3d_backend import rasterize_pytorch3d

        return rasterize_pytorch3d(verts, faces, cams, near=near, far=far, cull_backfaces=cull_backfaces)
    if backend != "torch":
        raise ValueError(f"rasterize: backend must be 'torch' or 'pytorch3d', got {backend!r}")
    rows, T = _face_planes(pc, faces)
    if pc.device.type != "cpu":
        max_candidates *= len(cams)
    face_idx, covered = _rasterize_face_idx(pc.detach(), faces, rows.detach(), T.detach(), cams.K.detach(), H, W,
                                            near, far, cull_backfaces, max_candidates)
    Kinv = torch.linalg.inv(cams.K.detach())
    bary, depth = _barycentrics(rows, T, Kinv, (len(cams), H, W), covered, max_candidates)
    return Fragments(face_idx=face_idx, bary=bary, depth=depth)


@full_precision
def fragments_for_faces(verts: Tensor, faces: Tensor, cameras: Camera, face_idx: Tensor) -> Fragments:
    """Fragments of known visible faces: face_idx (B, H, W) int (-1 = background), e.g. from a ``rasterize`` of a
    nearby mesh, with barycentrics and depth re-evaluated at the pixel centres for these vertices (verts and
    cameras as in ``rasterize``). Visibility is kept, not recomputed: exact for the mesh face_idx came from,
    a first-order G-buffer for small vertex motions (barycentrics may leave [0, 1] slightly), at a fraction of a
    rasterization's cost. Differentiable w.r.t. verts and the cameras' R, t."""
    verts, faces = check_mesh(verts, faces, "fragments_for_faces")
    pc, cams = prepare_views(verts, cameras)
    shape = (len(cams), cams.height, cams.width)
    if tuple(face_idx.shape) != shape:
        raise ValueError(f"fragments_for_faces: face_idx is {tuple(face_idx.shape)}, the views are {shape}")
    face_idx = face_idx.to(device=verts.device, dtype=torch.int64)
    rows, T = _face_planes(pc, faces)
    bi, yi, xi = (face_idx >= 0).nonzero(as_tuple=True)
    Kinv = torch.linalg.inv(cams.K.detach())
    bary, depth = _barycentrics(rows, T, Kinv, shape, (bi, yi, xi, face_idx[bi, yi, xi]))
    return Fragments(face_idx=face_idx, bary=bary, depth=depth)
