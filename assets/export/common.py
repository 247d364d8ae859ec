"""What every exporter shares: the animation input, presets (up axis, units), the conversion of a `Rig` (+ an
`ExportAnimation`) into the target frame, and atomic output.

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
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL
from core.errors import DoppelError

log = logging.getLogger(__name__)

ANIMATION_FILE = "animation.npz"
ROTATION_TOL = 1e-3            # |R^T R - I| and |det R - 1| of an animation's local rotations
Up = Literal["y", "z"]
Units = Literal["m", "cm"]
FORMATS = ("fbx", "usd", "usda", "usdc", "usdz", "glb")

# preset -> (up axis, units). Maya: Y-up, centimetres; Unreal: Z-up, centimetres; Blender: Z-up, metres.
PRESETS: dict[str, tuple[Up, Units]] = {"maya": ("y", "cm"), "unreal": ("z", "cm"), "blender": ("z", "m")}
UNIT_SCALE: dict[str, float] = {"m": 1.0, "cm": 100.0}   # target units per metre
METERS_PER_UNIT: dict[str, float] = {"m": 1.0, "cm": 0.01}


class ExportError(DoppelError):
    """An export failed or its input does not fit (animation vs rig, bad options, output path)."""


# -- animation input ------------------------------------------------------------------------------------------

@dataclass
class ExportAnimation:
    """An animation for a rig, in the rig's pose convention (see rigging.rig).

    joint_names: J names of rig joints (a subset of the rig's, any order; rig joints not listed stay at bind).
    local_rotations: (T, J, 3, 3) float rotation matrices relative to the bind pose, in each joint's bind frame,
        as `Rig.pose` takes them. root_translation: (T, 3) metres, Doppel frame (world offset of the roots).
    blendshape_names / blendshape_weights: K names and (T, K) weights (usually in [0, 1]), or empty / None.
    fps: frames per second (> 0).
    """

    joint_names: list[str]
    local_rotations: np.ndarray
    root_translation: np.ndarray
    fps: float
    blendshape_names: list[str] = field(default_factory=list)
    blendshape_weights: np.ndarray | None = None
    source: str = ""              # where it came from (file), for messages and provenance

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.blendshape_names = [str(n) for n in self.blendshape_names]
        self.local_rotations = np.asarray(self.local_rotations, dtype=np.float64)
        self.root_translation = np.asarray(self.root_translation, dtype=np.float64)
        if self.blendshape_weights is not None:
            self.blendshape_weights = np.asarray(self.blendshape_weights, dtype=np.float64)
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    def validate(self) -> ExportAnimation:
        """Check shapes, finiteness and that the rotations are rotations; raises ExportError. Returns self."""
        where = self.source or "animation"
        J = len(self.joint_names)
        R, t = self.local_rotations, self.root_translation
        if R.ndim != 4 or R.shape[1:] != (J, 3, 3) or R.shape[0] < 1:
            raise ExportError(f"{where}: local_rotations must be (T, {J}, 3, 3) with T >= 1, got {R.shape}")
        T = R.shape[0]
        if t.shape != (T, 3):
            raise ExportError(f"{where}: root_translation must be ({T}, 3), got {t.shape}")
        if len(set(self.joint_names)) != J:
            raise ExportError(f"{where}: duplicated joint names")
        if not (np.isfinite(R).all() and np.isfinite(t).all()):
            raise ExportError(f"{where}: non-finite rotations or translations")
        err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max()
        det = np.linalg.det(R)
        if err > ROTATION_TOL or np.abs(det - 1).max() > ROTATION_TOL:
            f, j = np.unravel_index(int(np.argmax(np.abs(det - 1))), det.shape)
            raise ExportError(f"{where}: local_rotations are not rotation matrices (|R^T R - I| up to {err:.2e}; "
                              f"frame {f} joint {self.joint_names[j]!r} det {det[f, j]:.4f})")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ExportError(f"{where}: fps must be > 0, got {self.fps}")
        K = len(self.blendshape_names)
        if K or self.blendshape_weights is not None:
            w = self.blendshape_weights
            if w is None or w.shape != (T, K) or not np.isfinite(w).all():
                raise ExportError(f"{where}: blendshape_weights must be finite ({T}, {K}), got "
                                  f"{None if w is None else w.shape}")
        return self

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/animation.npz`` (the layout `load_animation` reads; atomic). Returns the file."""
        import io

        from core.storage import atomic_write_bytes

        self.validate()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {"joint_names": np.array(self.joint_names, dtype=np.str_),
                  "local_rotations": self.local_rotations.astype(np.float32),
                  "root_translation": self.root_translation.astype(np.float32),
                  "fps": np.array(self.fps, dtype=np.float64),
                  "blendshape_names": np.array(self.blendshape_names, dtype=np.str_).reshape(-1)}
        if self.blendshape_weights is not None:
            arrays["blendshape_weights"] = self.blendshape_weights.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(d / ANIMATION_FILE, buf.getvalue())


def load_animation(path: str | Path) -> ExportAnimation:
    """Read an animation folder (``DIR/animation.npz``, with an optional ``manifest.json`` whose listed SHA-256 is
    checked) or an ``.npz`` file. Arrays: joint_names (J,) str, local_rotations (T, J, 3, 3) (or (T, J, 3)
    axis-angle, radians), root_translation (T, 3) metres, fps scalar, optional blendshape_names (K,) and
    blendshape_weights (T, K)."""
    from core.storage import read_manifest, sha256_file

    p = Path(path)
    if p.is_dir():
        f = p / ANIMATION_FILE
        if not f.is_file():
            raise FileNotFoundError(f"{p}: no {ANIMATION_FILE} in this animation folder")
        if (p / "manifest.json").is_file():
            manifest = read_manifest(p)
            entry = next((e for e in manifest.get("outputs", {}).values()
                          if isinstance(e, dict) and e.get("path") == ANIMATION_FILE), None)
            if entry and entry.get("sha256") and entry["sha256"] != sha256_file(f):
                raise ExportError(f"{f}: content does not match the SHA-256 in {p / 'manifest.json'}")
    elif p.is_file():
        f = p
    else:
        raise FileNotFoundError(f"{p}: animation folder or file does not exist")
    try:
        with np.load(f, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ExportError(f"{f}: unreadable animation ({e})") from e
    missing = [k for k in ("joint_names", "local_rotations", "root_translation", "fps") if k not in data]
    if missing:
        raise ExportError(f"{f}: missing arrays {missing} (expected joint_names, local_rotations, "
                          f"root_translation, fps)")
    R = np.asarray(data["local_rotations"], dtype=np.float64)
    if R.ndim == 3 and R.shape[-1] == 3:                         # axis-angle
        import roma
        import torch

        R = roma.rotvec_to_rotmat(torch.from_numpy(R)).numpy()
    names = data.get("blendshape_names")
    return ExportAnimation(
        joint_names=data["joint_names"].tolist(), local_rotations=R, root_translation=data["root_translation"],
        fps=float(data["fps"]), blendshape_names=[] if names is None else names.reshape(-1).tolist(),
        blendshape_weights=data.get("blendshape_weights"), source=str(f)).validate()


def animation_for_rig(anim: ExportAnimation, rig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Put ``anim`` in the rig's joint and blendshape order: (R (T, J, 3, 3), t (T, 3), w (T, N) or None).

    Raises ExportError when the animation names joints or blendshapes the rig does not have."""
    anim.validate()
    where = anim.source or "animation"
    index = {n: i for i, n in enumerate(rig.joint_names)}
    unknown = [n for n in anim.joint_names if n not in index]
    if unknown:
        raise ExportError(f"{where}: {len(unknown)} of its {len(anim.joint_names)} joints are not in the rig "
                          f"(first: {unknown[:5]}); the rig's joints start with {rig.joint_names[:5]}")
    T, J = anim.num_frames, rig.num_joints
    R = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    R[:, [index[n] for n in anim.joint_names]] = anim.local_rotations
    missing = J - len(anim.joint_names)
    if missing:
        log.info("%s: %d rig joints are not animated and stay at their bind pose", where, missing)
    w = None
    if anim.blendshape_names:
        bs_index = {n: i for i, n in enumerate(rig.blendshape_names)}
        unknown = [n for n in anim.blendshape_names if n not in bs_index]
        if unknown:
            raise ExportError(f"{where}: blendshapes {unknown[:5]} are not in the rig")
        w = np.zeros((T, len(rig.blendshape_names)))
        w[:, [bs_index[n] for n in anim.blendshape_names]] = anim.blendshape_weights
    return R, anim.root_translation.copy(), w


def smooth_random_animation(rig, frames: int = 30, fps: float = 30.0, seed: int = 0, amplitude: float = 0.4,
                            blendshapes: int = 4) -> ExportAnimation:
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
    return ExportAnimation(joint_names=list(rig.joint_names), local_rotations=R, root_translation=root, fps=fps,
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


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a triangle mesh (counter-clockwise = outside)."""
    v = vertices.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1.0)


def prepare_scene(rig, anim: ExportAnimation | None, options: ExportOptions, texture: str | Path | None = None,
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
    tex = None
    if texture is not None:
        tex = Path(texture)
        if not tex.is_file():
            raise FileNotFoundError(f"{tex}: texture file does not exist")
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
        scene.blendshape_weights, scene.fps = w, anim.fps
    return scene


def to_doppel(points: np.ndarray, options: ExportOptions) -> np.ndarray:
    """points (..., 3) in the target frame of ``options`` -> metres, Doppel frame."""
    return (points @ options.rotation) / options.scale


def reference_vertices(rig, anim: ExportAnimation, frames: Sequence[int]) -> np.ndarray:
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ExportError(f"{out}: the writer produced no file")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600; an export is shared like any new file
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
