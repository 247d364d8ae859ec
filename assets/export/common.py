"""What every exporter shares: the animation input, presets (up axis, units), the conversion of a `Rig` (+ an
`Animation`) into the target frame, and atomic output.

Frames. Doppel's frame is metres, right-handed, +Y up, facing +Z (core.conventions). A target frame is an up axis
("y": Doppel's axes; "z": (x, y, z) -> (x, -z, y), the inverse of core.conventions.zup_to_doppel, so the actor faces
-Y as in Blender and Unreal) and a unit ("m" or "cm", a uniform scale s). A rotation C and scale s change the
rig's data as: vertices, blendshape deltas, bind positions and root translation -> s C x; bind rotations -> C Rb.
Local rotations relative to the bind pose (Rig's pose convention) are unchanged by the change of frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL
from core.errors import DoppelError
from core.stage_folders import temp_sibling
from core.storage import raise_if_disk_full
from rigging.animation import Animation, AnimationError, in_rig_order, snap_fps

log = logging.getLogger(__name__)

Up = Literal["y", "z"]
Units = Literal["m", "cm"]
FORMATS = ("fbx", "usd", "usda", "usdc", "usdz", "glb", "abc")
TRACK_CHUNK_FRAMES = 4096     # frames of an animation turned into local quaternions at a time

# preset -> (up axis, units). Maya: Y-up, centimetres; Unreal: Z-up, centimetres; Blender: Z-up, metres.
PRESETS: dict[str, tuple[Up, Units]] = {"maya": ("y", "cm"), "unreal": ("z", "cm"), "blender": ("z", "m")}
UNIT_SCALE: dict[str, float] = {"m": 1.0, "cm": 100.0}   # target units per metre
METERS_PER_UNIT: dict[str, float] = {"m": 1.0, "cm": 0.01}


class ExportError(DoppelError):
    """An export failed or its input does not fit (animation vs rig, bad options, output path)."""


def animation_for_rig(anim: Animation, rig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Put ``anim`` in the rig's joint and blendshape order: (R (T, J, 3, 3), t (T, 3), w (T, N) or None)
    (`rigging.animation.in_rig_order`). Raises ExportError when the animation names joints or blendshapes the rig
    does not have (an invalid animation: AnimationError)."""
    anim.validate()
    try:
        return in_rig_order(anim, rig)
    except AnimationError as e:
        raise ExportError(str(e)) from None


def smooth_random_animation(rig, frames: int = 30, fps: float = 30.0, seed: int = 0, amplitude: float = 0.4,
                            blendshapes: int = 4) -> Animation:
    """A smooth random animation of every rig joint (sums of sines of random axis-angles, radians), a root path and
    ``blendshapes`` animated blendshape weights in [0, 1]. For tests, benchmarks and the demo."""
    import roma
    import torch

    rng = np.random.default_rng(seed)
    J = rig.num_joints
    t = np.arange(frames)[:, None, None] / fps
    freq = rng.uniform(0.3, 1.5, size=(1, J, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, J, 3))
    aa = amplitude * np.sin(2 * np.pi * freq * t + phase)
    R = roma.rotvec_to_rotmat(torch.from_numpy(aa)).numpy()
    tt = t[:, 0]
    root = np.concatenate([0.3 * np.sin(2 * np.pi * 0.25 * tt), 0.05 * np.sin(2 * np.pi * tt), 0.5 * tt], axis=1)
    k = min(blendshapes, len(rig.blendshape_names))
    names = list(rig.blendshape_names[:k])
    w = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, (1, k)) * tt + rng.uniform(0, 6.3, (1, k)))
    return Animation(joint_names=list(rig.joint_names), local_rotations=R, root_translation=root, fps=fps,
                           blendshape_names=names, blendshape_weights=w if k else None, source=f"random(seed={seed})")


# -- options and frames ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportOptions:
    """Target frame and metadata of an export."""

    up: Up = "y"                      # up axis of the file
    units: Units = "m"                # length unit of the file
    preset: str | None = None         # the preset the frame came from, recorded in the provenance

    @classmethod
    def from_preset(cls, preset: str | None = None, up: str | None = None, units: str | None = None,
                    default: tuple[Up, Units] = ("y", "m")) -> ExportOptions:
        """A preset (maya, unreal, blender) with explicit ``up`` / ``units`` overriding it."""
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        base_up, base_units = PRESETS[preset] if preset else default
        up = (up or base_up).lower()
        units = (units or base_units).lower()
        if up not in ("y", "z"):
            raise ValueError(f"--up must be y or z, got {up!r}")
        if units not in UNIT_SCALE:
            raise ValueError(f"--units must be cm or m, got {units!r}")
        return cls(up=up, units=units, preset=preset)  # type: ignore[arg-type]

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) Doppel frame -> target frame rotation C."""
        return np.eye(3) if self.up == "y" else ZUP_NEGY_FORWARD_TO_DOPPEL.T.copy()

    @property
    def scale(self) -> float:
        """Target units per metre."""
        return UNIT_SCALE[self.units]


@dataclass
class ExportScene:
    """A rig (and animation) converted to the target frame, ready for any writer. float64 unless said.

    bind: (J, 4, 4) joint world matrices (rigid; translation in target units); vertices (V, 3), normals (V, 3);
    faces (F, 3) int64; uvs (U, 2) (v up) and face_uvs (F, 3) or None; skin_indices / skin_weights (V, K);
    blendshape_deltas (N, V, 3) target units. Animation: rotations (T, J, 3, 3) local, relative to the bind pose;
    root_translation (T, 3) target units; blendshape_weights (T, N) or None; fps.
    """

    name: str
    joint_names: list[str]
    parents: np.ndarray
    bind: np.ndarray
    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None
    face_uvs: np.ndarray | None
    skin_indices: np.ndarray
    skin_weights: np.ndarray
    blendshape_names: list[str]
    blendshape_deltas: np.ndarray
    options: ExportOptions
    texture: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    rotations: np.ndarray | None = None
    root_translation: np.ndarray | None = None
    blendshape_weights: np.ndarray | None = None
    fps: float = 30.0

    @property
    def num_frames(self) -> int:
        return 0 if self.rotations is None else int(self.rotations.shape[0])

    def local_bind(self) -> np.ndarray:
        """(J, 4, 4) bind matrices relative to the parent's (roots: world)."""
        out = self.bind.copy()
        for j, p in enumerate(self.parents):
            if p >= 0:
                out[j] = np.linalg.inv(self.bind[p]) @ self.bind[j]
        return out

    def local_tracks(self) -> tuple[np.ndarray, np.ndarray]:
        """Animated local transforms of every joint relative to its parent: rotations (T, J, 3, 3) and
        translations (T, J, 3) (what a joint's node carries: rest local x (the bind-relative rotation); roots also
        move by the root translation)."""
        L = self.local_bind()
        T = max(self.num_frames, 1)
        R = self.rotations if self.rotations is not None else np.broadcast_to(np.eye(3), (1, len(L), 3, 3))
        rot = L[None, :, :3, :3] @ R
        trans = np.broadcast_to(L[None, :, :3, 3], (T, len(L), 3)).copy()
        if self.root_translation is not None:
            roots = self.parents < 0
            trans[:, roots] += self.root_translation[:, None]
        return rot, trans

    def local_quaternions(self, chunk: int = TRACK_CHUNK_FRAMES) -> tuple[np.ndarray, np.ndarray]:
        """`local_tracks` with the rotations as unit quaternions: (q (T, J, 4) float64 (x, y, z, w), no sign flip
        from a frame to the next; translations (T, J, 3)). The rotation matrices are made and converted ``chunk``
        frames at a time: a long take's (T, J, 3, 3) local rotations and the conversion's temporaries are never
        all held (a 10-minute 120 fps take onto a 104-joint rig: 0.54 GB of rotations, several times that in
        the conversion)."""
        L = self.local_bind()
        if self.rotations is None:
            rot, trans = self.local_tracks()
            return quat_xyzw(rot), trans
        T, J = self.rotations.shape[:2]
        q = quat_xyzw_chunked(self.rotations, chunk, left=L[None, :, :3, :3])
        trans = np.broadcast_to(L[None, :, :3, 3], (T, J, 3)).copy()
        if self.root_translation is not None:
            trans[:, self.parents < 0] += self.root_translation[:, None]
        return sign_continuous(q), trans


def quat_xyzw(R: np.ndarray, continuous: bool = True) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w) via roma; with 3+ dimensions and
    ``continuous``, sign-continuous along axis 0 (`sign_continuous`)."""
    import roma
    import torch

    q = roma.rotmat_to_unitquat(torch.from_numpy(np.ascontiguousarray(R, dtype=np.float64))).numpy()
    return sign_continuous(q) if continuous and q.ndim == 3 else q


def quat_xyzw_chunked(R: np.ndarray, chunk: int = TRACK_CHUNK_FRAMES, left: np.ndarray | None = None) -> np.ndarray:
    """(T, J, 3, 3) rotations (each first multiplied by ``left``, broadcast, when given) -> (T, J, 4) unit
    quaternions (x, y, z, w), as `quat_xyzw` without sign continuity, converted ``chunk`` frames at a time: a
    long take's products and the conversion's temporaries are held for a chunk, not for the take."""
    q = np.empty((*R.shape[:-2], 4))
    for a in range(0, len(R), chunk):
        part = R[a:a + chunk] if left is None else left @ R[a:a + chunk]
        q[a:a + chunk] = quat_xyzw(part, continuous=False)
    return q


def sign_continuous(q: np.ndarray) -> np.ndarray:
    """(T, J, 4) quaternions with each frame's sign chosen so that no joint's quaternion flips from the previous
    frame (a negative dot product), in place; returned. q and -q are one rotation, but a key interpolated between
    them swings the long way round."""
    if len(q) > 1:
        flip = np.einsum("fjk,fjk->fj", q[1:], q[:-1]) < 0              # against the frame before, as given
        sign = np.cumprod(np.where(flip, -1.0, 1.0), axis=0)            # each flip carries to the frames after
        q[1:] *= sign[..., None]
    return q


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a triangle mesh (counter-clockwise = outside)."""
    v = vertices.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1.0)


def prepare_scene(rig, anim: Animation | None, options: ExportOptions, texture: str | Path | None = None,
                  provenance: dict[str, Any] | None = None, name: str = "doppel") -> ExportScene:
    """Validate ``rig`` (and ``anim`` against it) and convert both to the target frame of ``options``.

    Pose correctives and blendshape-driven joint offsets have no equivalent in FBX / USD / glTF skinning: they are
    left out, with a warning (Anny rigs have neither)."""
    from rigging import RigError

    try:
        rig.validate()
    except RigError as e:
        raise ExportError(f"cannot export: {e}") from e
    if rig.corrective_joints is not None:
        log.warning("the rig's pose correctives are not exported (FBX/USD/glTF skinning has no equivalent)")
    if rig.blendshape_joint_deltas is not None and np.abs(rig.blendshape_joint_deltas).max() > 0:
        log.warning("the rig's blendshape joint offsets are not exported (no equivalent in the formats)")
    tex = None if texture is None else check_texture(texture)
    C, s = options.rotation, options.scale
    bind = rig.bind_matrices.copy()
    bind[:, :3, :3] = C @ bind[:, :3, :3]
    bind[:, :3, 3] = s * bind[:, :3, 3] @ C.T
    verts = s * rig.vertices.astype(np.float64) @ C.T
    scene = ExportScene(
        name=name, joint_names=list(rig.joint_names), parents=rig.parents.copy(), bind=bind, vertices=verts,
        normals=vertex_normals(verts, rig.faces), faces=rig.faces.copy(),
        uvs=None if rig.uvs is None else rig.uvs.astype(np.float64), face_uvs=rig.face_uvs,
        skin_indices=rig.skin_indices.copy(), skin_weights=rig.skin_weights.astype(np.float64),
        blendshape_names=list(rig.blendshape_names),
        blendshape_deltas=s * rig.blendshape_deltas.astype(np.float64) @ C.T,
        options=options, texture=tex, provenance=dict(provenance or {}))
    # unused influence slots point at joint 0 with weight 0
    scene.skin_indices[scene.skin_weights <= 0] = 0
    scene.skin_weights[scene.skin_weights < 0] = 0
    if anim is not None:
        R, t, w = animation_for_rig(anim, rig)
        scene.rotations, scene.root_translation = R, s * t @ C.T
        scene.blendshape_weights, scene.fps = w, snap_fps(anim.fps)     # 120.0048 -> 120 (manifest: ExportResult)
    return scene


MAX_TEXTURE_SIDE = 16384          # pixels; larger textures are refused before they are decoded


def check_texture(path: str | Path) -> Path:
    """``path`` when it is a PNG or JPEG image that decodes (at most MAX_TEXTURE_SIDE pixels a side); else
    FileNotFoundError or ExportError naming the file. The header is read before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    tex = Path(path)
    if not tex.is_file():
        raise FileNotFoundError(f"{tex}: texture file does not exist")
    try:
        with Image.open(tex) as im:
            fmt, size = im.format, im.size
            if fmt not in ("PNG", "JPEG"):
                raise ExportError(f"{tex}: textures must be PNG or JPEG images, this is {fmt or 'unknown'}")
            if max(size) > MAX_TEXTURE_SIDE:
                raise ExportError(f"{tex}: texture is {size[0]}x{size[1]} pixels, over {MAX_TEXTURE_SIDE} a side")
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ExportError(f"{tex}: not a readable PNG or JPEG image ({type(e).__name__}: {e})") from e
    return tex


def to_doppel(points: np.ndarray, options: ExportOptions) -> np.ndarray:
    """points (..., 3) in the target frame of ``options`` -> metres, Doppel frame."""
    return (points @ options.rotation) / options.scale


def reference_vertices(rig, anim: Animation, frames: Sequence[int]) -> np.ndarray:
    """(len(frames), V, 3) float64: `Rig.pose` (LBS, float64) of the given frames, metres, Doppel frame."""
    import torch

    R, t, w = animation_for_rig(anim, rig)
    f = list(frames)
    out = rig.pose(torch.from_numpy(R[f]), torch.from_numpy(t[f]),
                   None if w is None else torch.from_numpy(w[f]), method="lbs")
    return out.numpy()


# -- output ---------------------------------------------------------------------------------------------------

def check_output_path(out: str | Path, suffixes: Sequence[str]) -> Path:
    """Check that ``out`` can be written: its folder exists and is writable, the suffix fits. Returns a Path."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"{out}: expected a file ending in {' or '.join(suffixes)}")
    if out.is_dir():
        raise IsADirectoryError(f"{out}: is a folder, expected a file name")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: output folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{out}: no write permission in {out.parent}")
    return out


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` (same suffix) for the writers. On a clean exit the file is flushed, given the
    usual permissions (0666 minus the umask) and renamed over ``out``; on an error it is removed and ``out`` is
    untouched."""
    tmp = temp_sibling(out)          # a killed export's temporary file is removed by the next export of ``out``
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ExportError(f"{out}: the writer produced no file")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise_if_disk_full(e, tmp, out)
        raise
