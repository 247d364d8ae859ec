"""`Animation`: the one animation type of Doppel (a motion in a rig's pose convention), its ``animation.npz``
reader/writer and its validation. Retargeting writes it, export and the demo read it.

Convention (the rig's, see rigging.rig): ``local_rotations[t, j]`` is joint j's rotation relative to its bind pose,
in its own bind frame (world_j = world_parent @ bind_local_j @ local_rotations_j); ``root_translation[t]`` is the
world offset (metres, Doppel frame) of the root joint(s) from the bind position. Joints of a rig that an animation
does not list stay at their bind pose.

File layout (``animation.npz``, no pickle): joint_names (J,) str, local_rotations (T, J, 3, 3) float32 (a reader also
accepts (T, J, 3) axis-angle, radians), root_translation (T, 3) float32, fps float64 scalar, optional parents (J,)
int64, blendshape_names (K,) str and blendshape_weights (T, K) float32.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.conventions import ROTATION_TOL, invalid_rotations, rotation_errors
from core.errors import DoppelError

log = logging.getLogger(__name__)

ANIMATION_FILE = "animation.npz"
MAX_ROOT_TRANSLATION_M = 1e5   # a root further than 100 km from its bind position is a unit or data error
MAX_BLENDSHAPE_WEIGHT = 10.0   # |weight| above this is not an animation of a face
VALIDATE_CHUNK_FRAMES = 4096   # frames whose rotations are checked at a time
_REQUIRED = ("joint_names", "local_rotations", "root_translation", "fps")

# The frame rates of film, video and motion capture (NTSC rates exact: 24000/1001, ...), frames per second.
STANDARD_FPS = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 48.0, 50.0, 60000 / 1001, 60.0, 90.0, 100.0,
                120000 / 1001, 120.0, 240.0)
FPS_SNAP_TOLERANCE = 5e-4      # a rate within 0.05 % of a standard rate is that rate (BVH frame times are rounded)


def snap_fps(fps: float) -> float:
    """The standard rate (STANDARD_FPS) within FPS_SNAP_TOLERANCE (relative) of ``fps``, else ``fps`` itself.
    E.g. a BVH Frame Time of 0.008333 s (120.0048 fps) -> 120.0; 29.97 -> 30000/1001."""
    fps = float(fps)
    best = min(STANDARD_FPS, key=lambda r: abs(fps - r))
    return best if abs(fps - best) <= FPS_SNAP_TOLERANCE * best else fps


class AnimationError(DoppelError, ValueError):
    """An animation (in memory or an animation.npz) is malformed; the message names it and what is wrong."""


@dataclass
class Animation:
    """A motion in a rig's pose convention (see the module docstring).

    joint_names: J names (unique). local_rotations: (T, J, 3, 3) float64 rotation matrices relative to the bind
    pose. root_translation: (T, 3) float64 metres, Doppel frame. fps: frames per second (> 0).
    parents: (J,) int64 topological (-1 = root), or None when the animation is a subset of a rig's joints.
    blendshape_names / blendshape_weights: K names and (T, K) weights (usually in [0, 1]), or empty / None.
    source: where it came from (a file), for messages and provenance.
    """

    joint_names: list[str]
    local_rotations: np.ndarray
    root_translation: np.ndarray
    fps: float
    parents: np.ndarray | None = None
    blendshape_names: list[str] = field(default_factory=list)
    blendshape_weights: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.blendshape_names = [str(n) for n in self.blendshape_names]
        self.local_rotations = np.asarray(self.local_rotations, dtype=np.float64)
        self.root_translation = np.asarray(self.root_translation, dtype=np.float64)
        if self.parents is not None:
            self.parents = np.asarray(self.parents, dtype=np.int64)
        if self.blendshape_weights is not None:
            self.blendshape_weights = np.asarray(self.blendshape_weights, dtype=np.float64)
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    # -- validation -----------------------------------------------------------------------------------------

    def validate(self) -> Animation:
        """Check names, parents, shapes, that the rotations are rotations, that the root translation is finite
        and sane, fps > 0 and the blendshape weights; raises AnimationError naming the problem. Returns self."""
        where = self.source or "animation"
        self._check_names(where)
        T = self._check_rotations(where)
        t = self.root_translation
        if t.shape != (T, 3):
            raise AnimationError(f"{where}: root_translation must be ({T}, 3), got {t.shape}")
        if not np.isfinite(t).all():
            f = int(np.flatnonzero(~np.isfinite(t).all(axis=1))[0])
            raise AnimationError(f"{where}: root_translation is not finite (frame {f}: {t[f].tolist()})")
        if np.abs(t).max(initial=0.0) > MAX_ROOT_TRANSLATION_M:
            raise AnimationError(f"{where}: root_translation reaches {np.abs(t).max():.3g} m (limit "
                                 f"{MAX_ROOT_TRANSLATION_M:g} m): wrong units or corrupt data")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise AnimationError(f"{where}: fps must be a finite number > 0, got {self.fps}")
        self._check_blendshapes(where, T)
        return self

    def _check_names(self, where: str) -> None:
        J = len(self.joint_names)
        if J == 0:
            raise AnimationError(f"{where}: no joints")
        if len(set(self.joint_names)) != J:
            dup = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise AnimationError(f"{where}: duplicated joint names {dup[:5]}")
        if self.parents is not None:
            p = self.parents
            if p.shape != (J,):
                raise AnimationError(f"{where}: parents must be ({J},), got {p.shape}")
            if (p >= np.arange(J)).any() or (p < -1).any():
                raise AnimationError(f"{where}: parents must be topological (-1 <= parent < child)")

    def _check_rotations(self, where: str) -> int:
        J = len(self.joint_names)
        R = self.local_rotations
        if R.ndim != 4 or R.shape[1:] != (J, 3, 3) or R.shape[0] < 1:
            raise AnimationError(f"{where}: local_rotations must be (T, {J}, 3, 3) with T >= 1, got {R.shape}")
        if not np.isfinite(R).all():
            raise AnimationError(f"{where}: local_rotations are not finite")
        step = VALIDATE_CHUNK_FRAMES           # the check's float64 temporaries for a chunk, not the take
        bad = np.concatenate([invalid_rotations(R[a:a + step]) for a in range(0, R.shape[0], step)])
        if bad.any():
            orth, det_err = rotation_errors(R)
            f, j = np.unravel_index(int(np.argmax(np.maximum(orth, det_err))), bad.shape)
            raise AnimationError(f"{where}: local_rotations are not rotation matrices within {ROTATION_TOL:g} "
                                 f"(|R^T R - I| up to {orth.max():.2e}, |det R - 1| up to {det_err.max():.2e}; "
                                 f"worst at frame {f}, joint {self.joint_names[j]!r})")
        return int(R.shape[0])

    def _check_blendshapes(self, where: str, T: int) -> None:
        K = len(self.blendshape_names)
        if not K and self.blendshape_weights is None:
            return
        w = self.blendshape_weights
        if w is None or w.shape != (T, K) or not np.isfinite(w).all():
            raise AnimationError(f"{where}: blendshape_weights must be finite ({T}, {K}), got "
                                 f"{None if w is None else w.shape}")
        if len(set(self.blendshape_names)) != K:
            raise AnimationError(f"{where}: duplicated blendshape names")
        if K and np.abs(w).max() > MAX_BLENDSHAPE_WEIGHT:
            raise AnimationError(f"{where}: blendshape weights reach {np.abs(w).max():.3g} (limit "
                                 f"+-{MAX_BLENDSHAPE_WEIGHT:g})")

    # -- files ----------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Validate, then write ``path`` (an ``.npz`` file, or a folder that gets ``animation.npz``) atomically.
        Returns the file written."""
        from core.storage import atomic_write_bytes

        self.validate()
        p = Path(path)
        if p.suffix.lower() != ".npz":
            p.mkdir(parents=True, exist_ok=True)
            p = p / ANIMATION_FILE
        arrays = {"joint_names": np.array(self.joint_names, dtype=np.str_),
                  "local_rotations": self.local_rotations.astype(np.float32),
                  "root_translation": self.root_translation.astype(np.float32),
                  "fps": np.array(self.fps, dtype=np.float64),
                  "blendshape_names": np.array(self.blendshape_names, dtype=np.str_).reshape(-1)}
        if self.parents is not None:
            arrays["parents"] = self.parents.astype(np.int64)
        if self.blendshape_weights is not None:
            arrays["blendshape_weights"] = self.blendshape_weights.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(p, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Animation:
        """Read and validate an animation folder (``DIR/animation.npz``; a ``manifest.json`` beside it must list
        the file's SHA-256) or an ``.npz`` file. Raises FileNotFoundError or AnimationError (naming the file)."""
        f = _animation_file(Path(path))
        data = _read_npz(f)
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise AnimationError(f"{f}: not a Doppel animation: missing arrays {missing} (expected "
                                 f"{', '.join(_REQUIRED)})")
        R = np.asarray(data["local_rotations"], dtype=np.float64)
        if R.ndim == 3 and R.shape[-1] == 3:                         # axis-angle, radians
            import roma
            import torch

            R = roma.rotvec_to_rotmat(torch.from_numpy(R)).numpy()
        fps = np.asarray(data["fps"])
        if fps.size != 1:
            raise AnimationError(f"{f}: fps must be a scalar, got shape {fps.shape}")
        names = data.get("blendshape_names")
        return cls(joint_names=np.asarray(data["joint_names"]).reshape(-1).tolist(), local_rotations=R,
                   root_translation=data["root_translation"], fps=float(fps.reshape(())),
                   parents=data.get("parents"),
                   blendshape_names=[] if names is None else names.reshape(-1).tolist(),
                   blendshape_weights=data.get("blendshape_weights"), source=str(f)).validate()


def in_rig_order(anim: Animation, rig, frames: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``anim`` in a rig's joint and blendshape order, matched by name, as `rigging.Rig.pose` takes it:
    (R (T, J, 3, 3) local rotations, t (T, 3) metres, w (T, N) blendshape weights or None when the animation has
    none). Rig joints the animation does not name stay at their bind pose (identity), blendshapes it does not name
    at 0. Raises AnimationError when it names joints or blendshapes the rig does not have. frames: (n,) frame
    indices to return (T = n) instead of every frame: a few frames of a long take without a copy of all of it.
    An animation of the rig's joints in the rig's order (a retarget's) gives its own rotations as R, not a copy (a
    10-minute 120 fps take onto a 104-joint rig: 0.54 GB): read R, never write into it. The animation is validated
    first, with ``frames`` only those frames (a caller posing a long take a few frames at a time validates it
    once: 2.5 s for 71 552 frames of 104 joints)."""
    pick = slice(None) if frames is None else np.asarray(frames, np.int64)
    if frames is None:
        anim.validate()
    else:
        weights = None if anim.blendshape_weights is None else anim.blendshape_weights[pick]
        replace(anim, local_rotations=anim.local_rotations[pick], root_translation=anim.root_translation[pick],
                blendshape_weights=weights).validate()
    where = anim.source or "animation"
    index = {n: i for i, n in enumerate(rig.joint_names)}
    unknown = [n for n in anim.joint_names if n not in index]
    if unknown:
        raise AnimationError(f"{where}: {len(unknown)} of its {len(anim.joint_names)} joints are not in the rig "
                             f"(first: {unknown[:5]}); the rig's joints start with {list(rig.joint_names[:5])}")
    rotations = anim.local_rotations[pick]
    T, J = rotations.shape[0], len(rig.joint_names)
    if list(anim.joint_names) == list(rig.joint_names):
        R = rotations
    else:
        R = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
        R[:, [index[n] for n in anim.joint_names]] = rotations
    missing = J - len(anim.joint_names)
    if missing:
        log.log(logging.INFO if frames is None else logging.DEBUG,
                "%s: %d rig joints are not animated and stay at their bind pose", where, missing)
    w = None
    if anim.blendshape_names:
        bs_index = {n: i for i, n in enumerate(rig.blendshape_names)}
        unknown = [n for n in anim.blendshape_names if n not in bs_index]
        if unknown:
            raise AnimationError(f"{where}: blendshapes {unknown[:5]} are not in the rig"
                                 + (f" (its first: {list(rig.blendshape_names[:5])})" if len(rig.blendshape_names)
                                    else " (it has none)"))
        w = np.zeros((T, len(rig.blendshape_names)))
        w[:, [bs_index[n] for n in anim.blendshape_names]] = anim.blendshape_weights[pick]
    return R, anim.root_translation[pick].copy(), w


def _animation_file(p: Path) -> Path:
    """The .npz of an animation folder or file; checks a folder's manifest hash."""
    from core.storage import read_manifest, sha256_file

    if p.is_dir():
        f = p / ANIMATION_FILE
        if not f.is_file():
            raise FileNotFoundError(f"{p}: no {ANIMATION_FILE} in this animation folder")
        if (p / "manifest.json").is_file():
            manifest = read_manifest(p)
            outputs = manifest.get("outputs", {})
            entry = next((e for e in (outputs.values() if isinstance(outputs, dict) else [])
                          if isinstance(e, dict) and e.get("path") == ANIMATION_FILE), None)
            if entry and entry.get("sha256") and entry["sha256"] != sha256_file(f):
                raise AnimationError(f"{f}: content does not match the SHA-256 in {p / 'manifest.json'}")
        return f
    if p.is_file():
        return p
    raise FileNotFoundError(f"{p}: animation folder or file does not exist")


def _read_npz(f: Path) -> dict[str, np.ndarray]:
    if f.stat().st_size == 0:
        raise AnimationError(f"{f}: empty file (0 bytes), not an animation .npz")
    with open(f, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise AnimationError(f"{f}: a single .npy array, not an animation .npz")
    if magic[:4] != b"PK\x03\x04":                       # every .npz is a zip archive
        raise AnimationError(f"{f}: not an animation .npz (a `doppel retarget` output folder or its "
                             f"{ANIMATION_FILE}); a mocap clip (.bvh, .fbx, .glb, ...) is retargeted onto the rig "
                             "first: doppel retarget CLIP --rig RIG --out ANIM")
    try:
        z = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise AnimationError(f"{f}: unreadable animation .npz ({type(e).__name__}: {e})") from e
    try:
        with z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise AnimationError(f"{f}: unreadable animation .npz ({type(e).__name__}: {e})") from e
