"""The plate camera's lens: a swap through a calibrated lens with distortion (`doppel swap --plate-camera`).

MediaPipe reads the performer's face where the lens put it, in the plate's distorted pixels. The head is solved
and drawn in the lens's distortion-free image (the same K, no distortion: the "ideal" image): the plate's
landmarks are undistorted before the solve (`PlateLens.undistort`), and the double's head, drawn by the pinhole
rasterizer in the ideal image, is warped into the plate's pixels (`PlateLens.to_plate`) before the comp, which works
on the plate as it is. Points the comp needs in the plate (the double's face outline and landmarks) are projected
and then distorted (`PlateLens.distort`). Without distortion every one of these is the identity.

Pixel conventions are Doppel's (centres at +0.5); OpenCV's distortion model (k1, k2, p1, p2, k3) acts on
normalised coordinates, so Doppel's K is given to OpenCV as it is for points in and out.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["MapLens", "PlateLens", "plate_lens_from_calibration", "plate_lens_from_st_maps", "write_lens_maps"]

ASPECT_TOLERANCE = 0.005      # a calibration of another size is scaled when its aspect ratio is this close
BOX_MARGIN_PX = 2             # the ideal box drawn around a plate box's undistorted pixels, each side
GRID_PX = 4                   # the undistortion is solved every this many px and interpolated between
BOX_MAPS = 8                  # plate boxes whose ideal-position maps a lens keeps
NEWTON_STEPS = 4              # an ST-map lens's redistort map inverted by this many Newton steps
REMAP_COLUMNS = 1024          # points read through an ST-map are laid out in rows of this many for cv2.remap


@dataclass(frozen=True, eq=False)
class PlateLens:
    """A plate camera's intrinsics K (3, 3) float64 px (Doppel's convention) and OpenCV distortion dist (5,) (k1,
    k2, p1, p2, k3) for plate frames of width x height px; name and source say where they came from."""

    K: np.ndarray
    dist: np.ndarray
    width: int
    height: int
    name: str = "plate"
    source: str = ""
    files: tuple[str, ...] = ()             # the files it was read from (the swap's manifest hashes them)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, np.float64).reshape(3, 3)
        dist = np.zeros(5)
        d = np.asarray(self.dist, np.float64).reshape(-1)
        if d.size > 5 and np.any(d[5:]):
            raise ValueError(f"plate camera {self.name}: distortion terms beyond k3 (rational, thin prism) are not "
                             "supported")
        dist[:min(5, d.size)] = d[:5]
        if not (np.isfinite(K).all() and np.isfinite(dist).all() and K[0, 0] > 0 and K[1, 1] > 0):
            raise ValueError(f"plate camera {self.name}: its K must be finite with positive focal lengths, got "
                             f"{K.tolist()}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "dist", dist)

    @property
    def distorted(self) -> bool:
        """Whether the lens has any distortion (else every warp here is the identity)."""
        return bool(np.any(self.dist))

    @property
    def focal_px(self) -> float:
        return float(self.K[0, 0])

    def key(self) -> dict:
        """What the swap's result depends on of the lens, as JSON (a checkpoint is resumed only with the same)."""
        return {"K": self.K.tolist(), "dist": self.dist.tolist(), "size": [self.width, self.height]}

    def describe(self) -> str:
        """The lens in words for reports and logs."""
        where = f" from {self.source}" if self.source else ""
        d = ", ".join(f"{k} {v:+.4g}" for k, v in zip(("k1", "k2", "p1", "p2", "k3"), self.dist, strict=True) if v)
        return (f"camera {self.name}{where}: fx {self.K[0, 0]:.1f} fy {self.K[1, 1]:.1f} px, principal point "
                f"({self.K[0, 2]:.1f}, {self.K[1, 2]:.1f}), " + (f"distortion {d}" if d else "no distortion"))

    def fitted(self, width: int, height: int) -> PlateLens:
        """The lens for a plate of width x height px: itself at its own size, scaled (K; the distortion acts on
        normalised coordinates and stays) for a plate of the same aspect ratio (a proxy of the calibrated frames),
        else ValueError (one line). A lens whose distortion folds over inside the plate is refused here too."""
        if (width, height) == (self.width, self.height):
            lens = self
        else:
            a, b = self.width / self.height, width / height
            if abs(a / b - 1) > ASPECT_TOLERANCE:
                raise ValueError(f"plate camera {self.name}: calibrated for {self.width}x{self.height} frames, the "
                                 f"plate's are {width}x{height} (another aspect ratio: another lens or a cropped "
                                 "plate; calibrate the plate's frames)")
            s = np.diag([width / self.width, height / self.height, 1.0])
            lens = replace(self, K=s @ self.K, width=width, height=height, _lock=threading.Lock())
        lens.check_invertible()
        return lens

    def check_invertible(self) -> None:
        """ValueError (one line) when the distortion cannot be inverted at the plate's edge (a model folding over
        inside the frame: `capture.st_maps.undistorted_points`)."""
        if self.distorted:
            W, H = self.width, self.height
            xs, ys = np.linspace(0, W, 64), np.linspace(0, H, 64)
            edge = np.concatenate([np.stack([xs, np.zeros(64)], 1), np.stack([xs, np.full(64, H)], 1),
                                   np.stack([np.zeros(64), ys], 1), np.stack([np.full(64, W), ys], 1)])
            self.undistort(edge)

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) plate px -> (..., 2) float64 px of the ideal (distortion-free) image; NaN rows stay NaN."""
        from capture.st_maps import undistorted_points

        return self._finite_rows(uv, lambda p: undistorted_points(p, self.K, self.dist, self.K, self.name))

    def distort(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) px of the ideal image -> (..., 2) float64 plate px (OpenCV's projection); NaN rows stay NaN.
        Points farther from the axis than the plate's corners (`reach`) are carried out radially from where the
        lens puts that radius: a polynomial model folds back into the frame beyond its calibrated field."""
        return self._finite_rows(uv, self._distort_rows)

    def _distort_rows(self, pts: np.ndarray) -> np.ndarray:
        import cv2

        rays = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ np.linalg.inv(self.K).T
        far = np.maximum(np.hypot(rays[:, 0], rays[:, 1]) / self.reach, 1.0)
        rays[:, :2] /= far[:, None]
        d = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), self.K, self.dist)[0][:, 0]
        c = self.K[:2, 2]
        return c + (d - c) * far[:, None]

    def _finite_rows(self, uv: np.ndarray, fn) -> np.ndarray:
        """fn ((N, 2) -> (N, 2) float64) on the finite rows of uv (..., 2); NaN rows stay NaN; the identity (a
        copy) without distortion."""
        uv = np.asarray(uv, np.float64)
        if not self.distorted:
            return uv.copy()
        flat = uv.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.isfinite(flat).all(1)
        if ok.any():
            out[ok] = fn(flat[ok])
        return out.reshape(uv.shape)

    @functools.cached_property
    def reach(self) -> float:
        """The largest distance from the axis (normalised image coordinates) of a ray the plate shows: its corners'
        and its edges' (undistorted), 2 % more."""
        W, H = self.width, self.height
        pts = np.array([[0, 0], [W, 0], [0, H], [W, H], [W / 2, 0], [W / 2, H], [0, H / 2], [W, H / 2]], np.float64)
        rays = np.concatenate([self.undistort(pts), np.ones((len(pts), 1))], 1) @ np.linalg.inv(self.K).T
        return float(np.hypot(rays[:, 0], rays[:, 1]).max() * 1.02)

    def ideal_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """The inclusive pixel box (x0, y0, x1, y1) of the ideal image that holds where every pixel of the plate
        box ``box`` is (`BOX_MARGIN_PX` more each side; it may reach past the frame)."""
        m = self.box_map(box)
        x0, y0 = (math.floor(float(m[..., k].min())) - BOX_MARGIN_PX for k in (0, 1))
        x1, y1 = (math.ceil(float(m[..., k].max())) + BOX_MARGIN_PX for k in (0, 1))
        return x0, y0, x1, y1

    def draw_scale(self, box: tuple[int, int, int, int], ideal_box: tuple[int, int, int, int]) -> float:
        """The scale (<= 1) the ideal box is drawn at so that it has about as many pixels as the plate box: near a
        barrel lens's edge the ideal image is stretched, and drawing it at full size would draw pixels the lens
        does not keep."""
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        wi, hi = ideal_box[2] - ideal_box[0] + 1, ideal_box[3] - ideal_box[1] + 1
        return min(1.0, math.sqrt(w * h / (wi * hi)))

    def to_plate(self, image: np.ndarray, ideal_box: tuple[int, int, int, int], box: tuple[int, int, int, int],
                 scale: float = 1.0, nearest: bool = False) -> np.ndarray:
        """``image`` (h', w'[, C]) float32 drawn in ``ideal_box`` of the ideal image at ``scale`` (`draw_scale`) ->
        (h, w[, C]) float32 in the plate box ``box``, as the lens sees it (bilinear, or nearest; 0 outside the drawn
        image)."""
        import cv2

        m = self.box_map(box)
        mx = (m[..., 0] - ideal_box[0]) * scale - 0.5      # Doppel px -> OpenCV's pixel index of the drawn image
        my = (m[..., 1] - ideal_box[1]) * scale - 0.5
        flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        img = np.ascontiguousarray(image, np.float32)
        if img.ndim == 3 and img.shape[2] > 4:
            return np.stack([self.to_plate(img[..., k], ideal_box, box, scale, nearest)
                             for k in range(img.shape[2])], -1)
        out = cv2.remap(img, mx, my, flag, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return out.reshape(*mx.shape, *img.shape[2:])

    def box_map(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """(h, w, 2) float32 (read-only): the ideal position (Doppel px) of each pixel centre of the plate box, read
        bilinearly from `ideal_grid` (within 0.01 px of the exact inversion for any lens `check_invertible` takes).
        The last BOX_MAPS boxes' maps are kept: a frame's head asks for its box's map three times, a shot's comp
        draws every frame in one box."""
        import cv2

        box = tuple(int(v) for v in box)
        grid = self.ideal_grid
        with self._lock:
            kept = self.__dict__.setdefault("_box_maps", {})
            if box in kept:
                return kept[box]
        x0, y0, x1, y1 = box
        gx, gy = np.meshgrid((np.arange(x0, x1 + 1, dtype=np.float32) + 0.5) / GRID_PX,
                             (np.arange(y0, y1 + 1, dtype=np.float32) + 0.5) / GRID_PX)
        m = cv2.remap(grid, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        m.setflags(write=False)
        with self._lock:
            while len(kept) >= BOX_MAPS:
                kept.pop(next(iter(kept)))                 # the oldest
            kept[box] = m
        return m

    @property
    def ideal_grid(self) -> np.ndarray:
        """(H / GRID_PX + 1, W / GRID_PX + 1, 2) float32: the ideal position of every GRID_PX-th plate position
        (x = 0, GRID_PX, ... past the frame's right edge; y likewise), made once (the first caller's thread)."""
        with self._lock:
            grid = self.__dict__.get("_grid")
            if grid is None:
                xs = np.arange(0, self.width + GRID_PX, GRID_PX, dtype=np.float64)
                ys = np.arange(0, self.height + GRID_PX, GRID_PX, dtype=np.float64)
                x, y = np.meshgrid(xs, ys)
                grid = self.undistort(np.stack([x, y], -1)).astype(np.float32)
                grid.setflags(write=False)
                self.__dict__["_grid"] = grid
            return grid


@dataclass(frozen=True, eq=False)
class MapLens(PlateLens):
    """A plate lens given by its ST-maps (any lens model: 3DEqualizer's, anamorphic, ...), as a matchmove delivers
    it: ``undistort_st`` (Hu, Wu, 2) ST coordinates, for each pixel of the undistorted frame (Wu x Hu px, maybe an
    overscan of the plate), where it is in the plate; ``redistort_st`` (H, W, 2), for each plate pixel, where it is
    in the undistorted frame. K is the undistorted frame's (its focal length, its centre). The maps are normalised
    (ST), so a proxy of the plate uses them as they are (`fitted`). ``dist`` is unused (zeros)."""

    undistort_st: np.ndarray | None = None
    redistort_st: np.ndarray | None = None
    ideal_size: tuple[int, int] = (0, 0)        # (Wu, Hu) px of the undistorted frame

    @property
    def distorted(self) -> bool:
        return True

    def key(self) -> dict:
        import hashlib

        maps = hashlib.sha256(self.undistort_st.tobytes() + self.redistort_st.tobytes()).hexdigest()
        return {"K": self.K.tolist(), "size": [self.width, self.height], "st_maps": maps}

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return (f"camera {self.name}{where}: ST-maps, undistorted frame {self.ideal_size[0]}x{self.ideal_size[1]} "
                f"px, focal {self.K[0, 0]:.1f} px")

    def fitted(self, width: int, height: int) -> PlateLens:
        if (width, height) == (self.width, self.height):
            lens = self
        else:
            if abs((self.width / self.height) / (width / height) - 1) > ASPECT_TOLERANCE:
                raise ValueError(f"plate ST-maps: made for {self.width}x{self.height} frames, the plate's are "
                                 f"{width}x{height} (another aspect ratio)")
            k = width / self.width
            lens = replace(self, K=np.diag([k, height / self.height, 1.0]) @ self.K, width=width, height=height,
                           ideal_size=(round(self.ideal_size[0] * k), round(self.ideal_size[1] * height / self.height)),
                           _lock=threading.Lock())
        lens.check_invertible()
        return lens

    def check_invertible(self) -> None:
        """ValueError (one line) unless the two maps are each other's inverse over the plate (within 0.1 px: a pair
        of another lens, or one map given twice)."""
        xs, ys = np.meshgrid(np.linspace(0.5, self.width - 0.5, 33), np.linspace(0.5, self.height - 0.5, 19))
        p = np.stack([xs.ravel(), ys.ravel()], 1)
        q = self.undistort(p)
        wu, hu = self.ideal_size
        seen = (q[:, 0] > 1) & (q[:, 1] > 1) & (q[:, 0] < wu - 1) & (q[:, 1] < hu - 1)    # where both maps are
        back = _through_st(self.undistort_st, q[seen], self.ideal_size, (self.width, self.height))
        worst = float(np.abs(back - p[seen]).max()) if seen.mean() > 0.5 else float("inf")
        if not worst < 0.1:
            raise ValueError(f"plate ST-maps {self.source}: the undistort map does not undo the redistort map "
                             f"({worst:.3g} px off): give the pair of one lens, undistort first")

    def undistort(self, uv: np.ndarray) -> np.ndarray:
        return self._finite_rows(uv, lambda p: _through_st(self.redistort_st, p, (self.width, self.height),
                                                            self.ideal_size))

    def distort(self, uv: np.ndarray) -> np.ndarray:
        """The redistort map inverted by Newton's method from the undistort map's reading (the undistort map ends
        at the undistorted frame's edge, where a barrel lens's plate corners are beyond it)."""
        return self._finite_rows(uv, self._distort_rows)

    def _distort_rows(self, ideal: np.ndarray) -> np.ndarray:
        size = (self.width, self.height)
        q = _through_st(self.undistort_st, ideal, self.ideal_size, size)
        for _ in range(NEWTON_STEPS):
            r = self.undistort(q) - ideal
            jx = (self.undistort(q + [0.5, 0.0]) - self.undistort(q - [0.5, 0.0]))       # d ideal / d plate x
            jy = (self.undistort(q + [0.0, 0.5]) - self.undistort(q - [0.0, 0.5]))
            det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
            det = np.where(np.abs(det) > 1e-9, det, 1e-9)
            q = q - np.stack([(jy[:, 1] * r[:, 0] - jy[:, 0] * r[:, 1]) / det,
                              (-jx[:, 1] * r[:, 0] + jx[:, 0] * r[:, 1]) / det], 1)
        return q


def _through_st(st: np.ndarray, pts: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) Doppel px of the frame the map ``st`` (h, w, 2) covers (src_size (w', h') px; the map is read at its
    own resolution) -> (N, 2) px of the frame its ST values point into (dst_size (W, H)), bilinear; beyond the
    outermost pixel centres the map is extended linearly (its slope over the last pixel)."""
    h, w = st.shape[:2]
    scale = np.array([w / src_size[0], h / src_size[1]])
    q = pts * scale                                            # the map's own px
    inside = np.clip(q, 0.5, [w - 0.5, h - 0.5])
    over = q - inside
    v0 = _read_st(st, inside)
    v = v0.copy()
    for axis in (0, 1):
        out = over[:, axis] != 0
        if out.any():
            back = inside[out].copy()
            back[:, axis] -= np.sign(over[out, axis])          # one map pixel back inside
            v[out] += (v0[out] - _read_st(st, back)) * np.abs(over[out, axis])[:, None]
    return np.stack([v[:, 0] * dst_size[0], (1.0 - v[:, 1]) * dst_size[1]], 1)


def _read_st(st: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N, 2) float64 ST values of the map st (h, w, 2) at q (N, 2), its own px (Doppel's), bilinear."""
    import cv2

    n = len(q)
    m = np.zeros((-(-n // REMAP_COLUMNS) * REMAP_COLUMNS, 2), np.float32)     # rows of points: cv2.remap takes
    m[:n] = q - 0.5                                                          # at most 32767 rows or columns
    m = m.reshape(-1, REMAP_COLUMNS, 2)
    return cv2.remap(st, np.ascontiguousarray(m[..., 0]), np.ascontiguousarray(m[..., 1]), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).reshape(-1, 2)[:n].astype(np.float64)


def plate_lens_from_st_maps(undistort: str | Path, redistort: str | Path, focal_px: float,
                            principal: tuple[float, float] | None = None) -> MapLens:
    """The plate lens of a pair of ST-maps (float EXR, s and t in R and G, as Nuke's STMap reads them and `doppel
    capture cameras --st-maps` writes them): ``undistort`` the size of the undistorted frame, ``redistort`` the
    plate's; focal_px: the undistorted frame's focal length (px); principal: its principal point (cx, cy) px
    (Doppel's convention; None: the frame's centre, where a matchmove's undistorted plate usually has it).
    ValueError (one line) for an unreadable map or a principal point outside the undistorted frame."""
    from neural_render.image_io import read_exr

    if not (focal_px and focal_px > 0 and np.isfinite(focal_px)):
        raise ValueError("--plate-stmaps needs --focal-px: the undistorted frame's focal length in pixels")
    maps = []
    for path in (Path(undistort), Path(redistort)):
        if not path.is_file():
            raise ValueError(f"--plate-stmaps {path}: no such file")
        if path.suffix.lower() != ".exr":
            raise ValueError(f"--plate-stmaps {path}: an ST-map is read from an EXR file (float s, t)")
        try:
            st = np.ascontiguousarray(read_exr(path)[..., :2], np.float32)
        except Exception as e:  # noqa: BLE001 - OpenEXR raises plain exceptions on damaged files
            raise ValueError(f"--plate-stmaps {path}: unreadable ({e})") from None
        if not np.isfinite(st).all() or st.shape[-1] != 2:
            raise ValueError(f"--plate-stmaps {path}: an ST-map needs finite s, t in its red and green channels")
        maps.append(st)
    (hu, wu), (h, w) = maps[0].shape[:2], maps[1].shape[:2]
    cx, cy = (wu / 2, hu / 2) if principal is None else (float(principal[0]), float(principal[1]))
    if not (0 < cx < wu and 0 < cy < hu):
        raise ValueError(f"--plate-principal {cx:g},{cy:g}: outside the undistorted frame ({wu}x{hu} px)")
    K = np.array([[focal_px, 0, cx], [0, focal_px, cy], [0, 0, 1.0]])
    return MapLens(K, np.zeros(5), w, h, Path(undistort).stem.removesuffix("_undistort") or "plate",
                   f"{undistort}, {redistort}", (str(undistort), str(redistort)), undistort_st=maps[0],
                   redistort_st=maps[1], ideal_size=(wu, hu))


def write_lens_maps(lens: PlateLens, folder: str | Path) -> list[Path]:
    """The lens's undistort and redistort ST-maps (`assets.export.rig_cameras.write_st_maps`: float32 EXR,
    NAME_undistort.exr / NAME_redistort.exr, the plate's size) in ``folder``, for the comp that lines a pinhole
    scene of the track up with the plate; none without distortion. Returns the files written."""
    import torch

    from assets.export.rig_cameras import write_st_maps
    from capture.camera import Camera

    if not lens.distorted or isinstance(lens, MapLens):        # ST-maps given: the compositor has them
        return []
    cam = Camera(K=torch.tensor(lens.K), R=torch.eye(3, dtype=torch.float64), t=torch.zeros(3, dtype=torch.float64),
                 dist=torch.tensor(lens.dist), width=lens.width, height=lens.height, name=lens.name)
    return write_st_maps([cam], folder)


def plate_lens_from_calibration(path: str | Path, name: str | None = None) -> PlateLens:
    """The plate camera of a calibration file (any `capture.calibration_io.read_calibration` reads: Doppel's JSON,
    OpenCV YAML/JSON, COLMAP, Metashape XML): the camera ``name``, or its only camera. ValueError (one line) when
    the file has no such camera or several and no name."""
    from capture.calibration_io import read_calibration

    cams = read_calibration(path)
    names = [str(c.name) for c in cams]
    if name is None and len(cams) != 1:
        raise ValueError(f"--plate-camera {path}: {len(cams)} cameras ({', '.join(names[:8])}"
                         f"{', ...' if len(names) > 8 else ''}); name the plate's with --plate-camera-name")
    if name is not None and name not in names:
        raise ValueError(f"--plate-camera-name {name}: no such camera in {path} (it has {', '.join(names[:8])}"
                         f"{', ...' if len(names) > 8 else ''})")
    cam = cams[0] if name is None else cams[names.index(name)]
    return PlateLens(cam.K.detach().cpu().numpy().astype(np.float64), cam.dist.detach().cpu().numpy(),
                     int(cam.width), int(cam.height), str(cam.name), str(path),
                     (str(path),) if Path(path).is_file() else ())
