"""``PinholeNP``: a float64 numpy view of one OpenCV pinhole camera, for capture's numeric work
(calibration, triangulation, board renders), where thousands of small cv2/numpy calls would pay torch's
per-call overhead. The public type is ``capture.Camera`` (torch); ``as_np`` converts a Camera (or a
PinholeNP) to this, ``PinholeNP.to_camera`` converts back (float64 tensors).

Convention (ARCHITECTURE.md): world-to-camera ``x_cam = R @ x_world + t``; x right, y down, z forward;
pixel centres at integer + 0.5 (OpenCV's own projection convention: pixel (0, 0) covers [0, 1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PinholeNP:
    name: str
    K: np.ndarray                      # (3, 3) intrinsics, pixels
    R: np.ndarray                      # (3, 3) world -> camera rotation
    t: np.ndarray                      # (3,) world -> camera translation, metres
    width: int                         # image width, pixels
    height: int                        # image height, pixels
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))  # (5,) OpenCV k1, k2, p1, p2, k3

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3)
        self.dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        if self.dist.size < 5:
            self.dist = np.concatenate([self.dist, np.zeros(5 - self.dist.size)])
        self.width, self.height = int(self.width), int(self.height)

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates, metres: -R^T t."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix K [R | t] (ignores distortion)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def rvec(self) -> np.ndarray:
        """(3,) OpenCV Rodrigues vector of R."""
        import cv2

        return cv2.Rodrigues(self.R)[0].reshape(3)

    def world_to_cam(self, X: np.ndarray) -> np.ndarray:
        """X (..., 3) world points -> (..., 3) camera-frame points."""
        return np.asarray(X, dtype=np.float64) @ self.R.T + self.t

    def project(self, X: np.ndarray) -> np.ndarray:
        """X (N, 3) world points, metres -> (N, 2) pixel coordinates, with distortion (cv2.projectPoints)."""
        import cv2

        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        if len(X) == 0:
            return np.zeros((0, 2))
        uv, _ = cv2.projectPoints(X, self.rvec, self.t, self.K, self.dist)
        return uv.reshape(-1, 2)

    def depth(self, X: np.ndarray) -> np.ndarray:
        """X (N, 3) -> (N,) camera z (metres, positive in front)."""
        return self.world_to_cam(X)[..., 2]

    def undistort_points(self, uv: np.ndarray) -> np.ndarray:
        """uv (N, 2) distorted pixels -> (N, 2) pixels of the same camera without distortion."""
        import cv2

        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        if not np.any(self.dist) or len(uv) == 0:
            return uv.reshape(-1, 2)
        return cv2.undistortPoints(uv, self.K, self.dist, P=self.K).reshape(-1, 2)

    @staticmethod
    def look_at(name: str, eye, target, K, width: int, height: int, up=(0.0, 1.0, 0.0)) -> PinholeNP:
        """A camera at ``eye`` (3,) looking at ``target`` (3,), world +Y up appearing up in the image."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-9:
            x = np.cross(z, np.array([0.0, 0.0, 1.0]))
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        return PinholeNP(name=name, K=K, R=R, t=-R @ eye, width=width, height=height)

    def to_camera(self, dtype=None):
        """-> capture.Camera (float64 tensors unless ``dtype`` says otherwise)."""
        import torch

        from capture.camera import Camera

        dt = dtype or torch.float64
        return Camera(K=torch.tensor(self.K, dtype=dt), R=torch.tensor(self.R, dtype=dt),
                      t=torch.tensor(self.t, dtype=dt), dist=torch.tensor(self.dist[:5], dtype=dt),
                      width=self.width, height=self.height, name=self.name)


def as_np(cam) -> PinholeNP:
    """A capture.Camera (single) or a PinholeNP -> PinholeNP (float64 numpy copy)."""
    if isinstance(cam, PinholeNP):
        return cam
    if getattr(cam, "is_batch", False):
        raise ValueError("as_np: expected a single camera, got a batch; iterate over it")
    f = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
    return PinholeNP(name=str(cam.name), K=f(cam.K), R=f(cam.R), t=f(cam.t), width=cam.width, height=cam.height,
                     dist=f(cam.dist))


def as_camera(cam):
    """A PinholeNP or a capture.Camera -> capture.Camera."""
    return cam.to_camera() if isinstance(cam, PinholeNP) else cam
