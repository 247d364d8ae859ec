"""``Camera``: an OpenCV pinhole camera (with OpenCV distortion), single or batched, as torch tensors.

Conventions (ARCHITECTURE.md, core/conventions.py): world-to-camera ``R`` (3, 3) and ``t`` (3,) so that
``x_cam = R @ x_world + t``; camera x right, y down, z forward; ``K`` (3, 3) in pixels; pixel centres at
integer + 0.5 (the centre of the top-left pixel is (0.5, 0.5)); distortion ``dist`` is OpenCV's
(k1, k2, p1, p2, k3). Units: metres.

A single camera holds ``K`` (3, 3), ``R`` (3, 3), ``t`` (3,), ``dist`` (5,) and a ``name`` str. A batch of N
cameras (same image size) holds ``K`` (N, 3, 3), ``R`` (N, 3, 3), ``t`` (N, 3), ``dist`` (N, 5) and ``name``
a tuple of N str; build one with ``Camera.stack([...])``, index it with ``cams[i]``, iterate over it.

Device and dtype follow the tensors given (float32 when built from numpy or lists). ``R`` and ``t`` may
require grad (camera refinement): every method is differentiable in them.

    cam = Camera.look_at(eye=(0, 1.6, 3.0), target=(0, 1.0, 0), width=512, height=512, fov_y_deg=40)
    uv, z = cam.project(points)                 # (N, 2) pixels, (N,) metres
    K, dist, rvec, tvec = cam.to_opencv()       # numpy, for cv2.projectPoints & co
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from core.conventions import PIXEL_CENTER_OFFSET, ROTATION_TOL, invalid_rotations, rotation_errors

__all__ = ["Camera"]



def _as_tensor(x, name: str, device=None, dtype=None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(device=device or x.device, dtype=dtype or (x.dtype if x.is_floating_point() else torch.float32))
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"camera: {name} must be numeric, got {type(x).__name__}") from e
    return torch.as_tensor(arr, dtype=dtype or torch.float32, device=device)


# Set while a Camera method builds a camera from a validated one (a subset, a batch, another device, a scaled or
# cropped image, no distortion): such cameras skip the value checks, which read tensors back to the host (about
# 7 synchronisations a camera on a GPU, 21 in each frame of a neural double's shot).
_DERIVED: ContextVar[bool] = ContextVar("camera_derived", default=False)


@contextmanager
def _derived():
    token = _DERIVED.set(True)
    try:
        yield
    finally:
        _DERIVED.reset(token)


def _check_values(K: Tensor, R: Tensor, t: Tensor, dist: Tensor, label: str) -> None:
    """ValueError naming the camera unless K, R, t, dist are finite, the focal lengths positive, K's last row
    [0, 0, 1] with K[1, 0] = 0, and R a rotation. Reads values back (host synchronisations on a GPU): cameras
    derived from validated ones (`Camera` methods, `_derived`) skip it."""
    dev = K.device
    with torch.no_grad():
        for field_name, x in (("K", K), ("R", R), ("t", t), ("dist", dist)):
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"camera {label!r}: {field_name} contains NaN or infinite values")
        fx, fy = K[..., 0, 0], K[..., 1, 1]
        if bool((fx <= 0).any()) or bool((fy <= 0).any()):
            raise ValueError(f"camera {label!r}: focal length must be > 0 pixels, got fx={fx.tolist()}, "
                             f"fy={fy.tolist()}")
        last = K[..., 2, :].detach().double()
        if not torch.allclose(last, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=dev).expand_as(last)):
            raise ValueError(f"camera {label!r}: K's last row must be [0, 0, 1], got {last.tolist()}")
        if K[..., 1, 0].abs().max() > 0:
            raise ValueError(f"camera {label!r}: K[1, 0] must be 0")
        Rn = R.detach().double().cpu().numpy()
        if invalid_rotations(Rn).any():
            ortho, det = rotation_errors(Rn)
            raise ValueError(f"camera {label!r}: R must be a rotation (orthonormal, det +1, within "
                             f"{ROTATION_TOL:g}); |R^T R - I| = {float(np.max(ortho)):.2e}, "
                             f"det = {(np.linalg.det(Rn)).tolist()}")


@dataclass(frozen=True)
class Camera:
    """OpenCV pinhole camera(s). See the module docstring for conventions and shapes."""

    K: Tensor            # (3, 3) or (N, 3, 3) intrinsics in pixels: [[fx, s, cx], [0, fy, cy], [0, 0, 1]]
    R: Tensor            # (3, 3) or (N, 3, 3) world-to-camera rotation
    t: Tensor            # (3,) or (N, 3) world-to-camera translation, metres
    width: int           # image width in pixels (the same for every camera of a batch)
    height: int          # image height in pixels
    dist: Tensor | None = None  # (5,) or (N, 5) OpenCV (k1, k2, p1, p2, k3); None -> zeros
    name: str | tuple[str, ...] = "cam"  # a str, or a tuple of N str for a batch

    def __post_init__(self) -> None:
        K = _as_tensor(self.K, "K")
        dev, dt = K.device, K.dtype
        R = _as_tensor(self.R, "R", dev, dt)
        t = _as_tensor(self.t, "t", dev, dt)
        batched = K.dim() == 3
        lead = tuple(K.shape[:1]) if batched else ()
        label = self.name if isinstance(self.name, str) else "batch"
        if K.shape[-2:] != (3, 3) or K.dim() not in (2, 3):
            raise ValueError(f"camera {label!r}: K must be (3, 3) or (N, 3, 3), got {tuple(K.shape)}")
        if tuple(R.shape) != lead + (3, 3):
            raise ValueError(f"camera {label!r}: R must be {lead + (3, 3)} to match K, got {tuple(R.shape)}")
        if tuple(t.shape) != lead + (3,):
            raise ValueError(f"camera {label!r}: t must be {lead + (3,)} to match K, got {tuple(t.shape)}")
        dist = torch.zeros(lead + (5,), device=dev, dtype=dt) if self.dist is None else \
            _as_tensor(self.dist, "dist", dev, dt)
        if dist.shape[-1] == 4:  # (k1, k2, p1, p2): k3 = 0
            dist = torch.cat([dist, torch.zeros_like(dist[..., :1])], -1)
        if tuple(dist.shape) != lead + (5,):
            raise ValueError(f"camera {label!r}: dist must be {lead + (5,)} (k1, k2, p1, p2, k3), "
                             f"got {tuple(dist.shape)}")
        if not (isinstance(self.width, int | np.integer) and isinstance(self.height, int | np.integer)) \
                or self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {label!r}: width and height must be positive integers, "
                             f"got {self.width!r} x {self.height!r}")
        name = self.name
        if batched:
            n = K.shape[0]
            if isinstance(name, str):
                name = tuple(f"{name}{i}" for i in range(n))
            name = tuple(str(s) for s in name)
            if len(name) != n:
                raise ValueError(f"camera batch: {n} cameras but {len(name)} names")
        elif not isinstance(name, str):
            raise ValueError(f"camera: a single camera's name must be a str, got {type(name).__name__}")
        if not _DERIVED.get():
            _check_values(K, R, t, dist, label)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # ---------------------------------------------------------------- batches
    @property
    def is_batch(self) -> bool:
        """True for a batch of cameras (K is (N, 3, 3))."""
        return self.K.dim() == 3

    def __len__(self) -> int:
        if not self.is_batch:
            raise TypeError("a single Camera has no len(); use Camera.stack([...]) or cam.as_batch()")
        return self.K.shape[0]

    def __getitem__(self, i: int) -> Camera:
        if not self.is_batch:
            raise TypeError("a single Camera cannot be indexed")
        with _derived():
            return Camera(K=self.K[i], R=self.R[i], t=self.t[i], dist=self.dist[i], width=self.width,
                          height=self.height, name=self.name[i])

    def __iter__(self) -> Iterator[Camera]:
        for i in range(len(self)):
            yield self[i]

    def as_batch(self) -> Camera:
        """This camera as a batch (a batch of one for a single camera; itself for a batch)."""
        if self.is_batch:
            return self
        with _derived():
            return Camera(K=self.K[None], R=self.R[None], t=self.t[None], dist=self.dist[None], width=self.width,
                          height=self.height, name=(self.name,))

    @staticmethod
    def stack(cameras: Sequence[Camera]) -> Camera:
        """N single cameras (or batches) of the same image size -> one batch (concatenated)."""
        cams = [c.as_batch() for c in cameras]
        if not cams:
            raise ValueError("Camera.stack: no cameras given")
        sizes = {(c.width, c.height) for c in cams}
        if len(sizes) != 1:
            raise ValueError(f"Camera.stack: cameras of a batch must share one image size, got {sorted(sizes)}")
        ref = cams[0].K
        cat = lambda xs: torch.cat([x.to(ref.device, ref.dtype) for x in xs])  # noqa: E731
        with _derived():
            return Camera(K=cat([c.K for c in cams]), R=cat([c.R for c in cams]), t=cat([c.t for c in cams]),
                          dist=cat([c.dist for c in cams]), width=cams[0].width, height=cams[0].height,
                          name=tuple(n for c in cams for n in c.name))

    def to(self, device=None, dtype=None) -> Camera:
        """The same camera(s) on ``device`` / in ``dtype``."""
        f = lambda x: x.to(device=device or x.device, dtype=dtype or x.dtype)  # noqa: E731
        with _derived():
            return replace(self, K=f(self.K), R=f(self.R), t=f(self.t), dist=f(self.dist))

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    # ---------------------------------------------------------------- geometry
    @property
    def fx(self) -> Tensor:
        return self.K[..., 0, 0]

    @property
    def fy(self) -> Tensor:
        return self.K[..., 1, 1]

    @property
    def center(self) -> Tensor:
        """Camera centre in world coordinates, metres: (3,) or (N, 3); ``-R^T t``."""
        return -(self.R.transpose(-1, -2) @ self.t[..., None])[..., 0]

    @property
    def has_distortion(self) -> bool:
        return bool((self.dist != 0).any())

    def undistorted(self) -> Camera:
        """The same camera(s) with zero distortion."""
        with _derived():
            return replace(self, dist=torch.zeros_like(self.dist))

    def world_to_camera(self, points: Tensor) -> Tensor:
        """points (..., P, 3) world metres -> (..., P, 3) camera coordinates (x right, y down, z forward).

        For a batch of N cameras, points (P, 3) give (N, P, 3) and points (N, P, 3) give (N, P, 3)."""
        points = torch.as_tensor(points, device=self.device, dtype=self.dtype)
        return points @ self.R.transpose(-1, -2) + self.t[..., None, :]

    def project(self, points: Tensor, distort: bool = True) -> tuple[Tensor, Tensor]:
        """World points -> (uv pixels, depth).

        points: (P, 3) world metres, or (N, P, 3) for a batch of N cameras.
        Returns uv (P, 2) or (N, P, 2) in pixels (pixel centres at integer + 0.5) and depth (P,) or (N, P),
        the camera-space z in metres (points with z <= 0 are behind the camera: their uv is meaningless).
        distort: apply the OpenCV distortion model (matches cv2.projectPoints up to the pixel-centre
        convention, which is the same: OpenCV's cx, cy are in the same continuous coordinates).
        """
        pc = self.world_to_camera(points)
        z = pc[..., 2]
        xy = pc[..., :2] / z[..., None]
        if distort and self.has_distortion:
            xy = self._distort(xy)
        K = self.K[..., None, :, :] if self.is_batch else self.K
        u = K[..., 0, 0] * xy[..., 0] + K[..., 0, 1] * xy[..., 1] + K[..., 0, 2]
        v = K[..., 1, 1] * xy[..., 1] + K[..., 1, 2]
        return torch.stack([u, v], -1), z

    def _distort(self, xy: Tensor) -> Tensor:
        d = self.dist[..., None, :] if self.is_batch else self.dist
        k1, k2, p1, p2, k3 = (d[..., i] for i in range(5))
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return torch.stack([xd, yd], -1)

    def pixel_rays(self) -> Tensor:
        """Ray directions through every pixel centre, camera frame, z = 1 (pinhole, no distortion):
        (H, W, 3), or (N, H, W, 3) for a batch."""
        Kinv = torch.linalg.inv(self.K.detach())
        u = torch.arange(self.width, device=self.device, dtype=self.dtype) + PIXEL_CENTER_OFFSET
        v = torch.arange(self.height, device=self.device, dtype=self.dtype) + PIXEL_CENTER_OFFSET
        pix = torch.stack(torch.meshgrid(v, u, indexing="ij")[::-1] + (torch.ones(self.height, self.width,
                          device=self.device, dtype=self.dtype),), -1)
        if self.is_batch:
            return torch.einsum("nij,hwj->nhwi", Kinv, pix)
        return pix @ Kinv.T

    def scaled(self, factor: float) -> Camera:
        """The camera(s) for an image ``factor`` times larger (e.g. 2 for 2x supersampling); the same
        field of view. width and height are rounded to integers; factor must give whole pixels."""
        w, h = self.width * factor, self.height * factor
        if abs(w - round(w)) > 1e-9 or abs(h - round(h)) > 1e-9 or factor <= 0:
            raise ValueError(f"Camera.scaled: factor {factor} does not give a whole image size")
        S = torch.diag(torch.tensor([factor, factor, 1.0], device=self.device, dtype=self.dtype))
        with _derived():
            return replace(self, K=S @ self.K, width=int(round(w)), height=int(round(h)))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> Camera:
        """The camera(s) of the width x height pixel window whose top-left pixel is (x0, y0) (the principal
        point shifted; the window may reach past the image, e.g. padding right and down)."""
        K = self.K.clone()
        K[..., 0, 2] -= x0
        K[..., 1, 2] -= y0
        with _derived():
            return replace(self, K=K, width=int(width), height=int(height))

    def projection_matrix(self) -> Tensor:
        """P = K [R | t]: (3, 4) or (N, 3, 4)."""
        return self.K @ torch.cat([self.R, self.t[..., None]], -1)

    @property
    def fov_y_deg(self) -> Tensor:
        """Vertical field of view in degrees, (,) or (N,)."""
        return torch.rad2deg(2 * torch.atan(self.height / (2 * self.fy)))

    # ---------------------------------------------------------------- construction
    @staticmethod
    def from_opencv(K, dist=None, rvec=None, tvec=None, *, R=None, width: int, height: int,
                    name: str = "cam") -> Camera:
        """From OpenCV matrices (numpy or tensors): K (3, 3), dist (4,)/(5,)/(1, 5) or None, the rotation as
        ``rvec`` (3,) Rodrigues vector or ``R`` (3, 3), ``tvec`` (3,). Extra distortion terms beyond k3
        (rational / thin-prism) are not supported: ValueError if non-zero."""
        import roma

        if (rvec is None) == (R is None):
            raise ValueError(f"camera {name!r}: give exactly one of rvec or R")
        Kt = _as_tensor(K, "K")
        if R is None:
            rv = _as_tensor(rvec, "rvec", Kt.device, torch.float64).reshape(-1)
            if rv.shape != (3,):
                raise ValueError(f"camera {name!r}: rvec must have 3 values, got {tuple(rv.shape)}")
            R = roma.rotvec_to_rotmat(rv).to(Kt.dtype)
        if tvec is None:
            raise ValueError(f"camera {name!r}: tvec is required")
        t = _as_tensor(tvec, "tvec", Kt.device, Kt.dtype).reshape(-1)
        d = None
        if dist is not None:
            d = _as_tensor(dist, "dist", Kt.device, Kt.dtype).reshape(-1)
            if d.numel() > 5:
                if bool((d[5:] != 0).any()):
                    raise ValueError(f"camera {name!r}: distortion terms beyond (k1, k2, p1, p2, k3) are not "
                                     f"supported, got {d.numel()} coefficients")
                d = d[:5]
        return Camera(K=Kt, R=_as_tensor(R, "R", Kt.device, Kt.dtype), t=t, dist=d, width=width, height=height,
                      name=name)

    def to_opencv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(K (3, 3), dist (5,), rvec (3,), tvec (3,)) float64 numpy, for a single camera (cv2.projectPoints,
        cv2.solvePnP, ...). For a batch, each has a leading N axis."""
        import roma

        R = self.R.detach().double().cpu()
        rvec = roma.rotmat_to_rotvec(R)
        f = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
        return f(self.K), f(self.dist), rvec.numpy(), f(self.t)

    @staticmethod
    def look_at(eye, target, up=(0.0, 1.0, 0.0), *, width: int, height: int, fov_y_deg: float | None = None,
                focal: float | None = None, principal: tuple[float, float] | None = None, name: str = "cam",
                dtype: torch.dtype = torch.float32, device=None) -> Camera:
        """A camera at ``eye`` looking at ``target`` (world metres, (3,)), with world ``up`` pointing up in the
        image (image y down). Give the vertical field of view ``fov_y_deg`` or the focal length ``focal``
        in pixels (square pixels). principal: (cx, cy) in pixels, default the image centre."""
        eye = _as_tensor(eye, "eye", device, torch.float64).reshape(3)
        target = _as_tensor(target, "target", device, torch.float64).reshape(3)
        up = _as_tensor(up, "up", device, torch.float64).reshape(3)
        fwd = target - eye
        if float(fwd.norm()) < 1e-12:
            raise ValueError(f"camera {name!r}: eye and target coincide")
        z = fwd / fwd.norm()
        x = torch.linalg.cross(z, up)  # camera x (right) = forward x up
        if float(x.norm()) < 1e-9:
            raise ValueError(f"camera {name!r}: up {up.tolist()} is parallel to the viewing direction")
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
        t = -R @ eye
        if (fov_y_deg is None) == (focal is None):
            raise ValueError(f"camera {name!r}: give exactly one of fov_y_deg or focal")
        if focal is None:
            if not 0 < fov_y_deg < 180:
                raise ValueError(f"camera {name!r}: fov_y_deg must be in (0, 180), got {fov_y_deg}")
            focal = height / (2 * math.tan(math.radians(fov_y_deg) / 2))
        cx, cy = principal if principal is not None else (width / 2, height / 2)
        K = torch.tensor([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=torch.float64, device=device)
        return Camera(K=K.to(dtype), R=R.to(dtype), t=t.to(dtype), width=width, height=height, name=name)

    @staticmethod
    def orbit(n: int, target, radius: float, elevation: float = 0.0, *, width: int, height: int,
              fov_y_deg: float = 40.0, start_deg: float = 0.0, name: str = "orbit",
              dtype: torch.dtype = torch.float32, device=None) -> Camera:
        """A batch of ``n`` look-at cameras evenly spaced on a horizontal circle (+Y up) of ``radius`` metres
        around ``target``, ``elevation`` metres above it, each ``width`` x ``height`` pixels; the first at
        azimuth ``start_deg`` (0 = on +Z, in front of an actor facing +Z), then counter-clockwise seen
        from above (+X next)."""
        target = np.asarray(target, dtype=np.float64).reshape(3)
        cams = []
        for i in range(n):
            a = math.radians(start_deg + 360.0 * i / n)
            eye = target + np.array([radius * math.sin(a), elevation, radius * math.cos(a)])
            cams.append(Camera.look_at(eye, target, width=width, height=height, fov_y_deg=fov_y_deg,
                                       name=f"{name}{i:02d}", dtype=dtype, device=device))
        return Camera.stack(cams)
