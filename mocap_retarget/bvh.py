"""BVH (Biovision Hierarchy) reader and writer.

What real files contain and this module handles: 3 or 6 channels per joint (mixed in one file), any
rotation order per joint (the order of the ``?rotation`` channels, read as *intrinsic* rotations, so
``Zrotation Xrotation Yrotation`` means R = Rz @ Rx @ Ry), ``End Site`` blocks, tabs, CRLF line ends,
position channels on non-root joints, and units in cm, inches, mm or metres (detected from the
skeleton's size, overridable). A ``Frames:`` count that disagrees with the data, a truncated file, a
non-numeric value and a file with zero frames raise :class:`BvhError` naming the file and line.

Conventions of the returned :class:`Motion`:
- lengths in metres (the file's values times ``Motion.scale``);
- ``local_rotations[f, j]`` is the joint's rotation in its parent's frame (3x3); the rest pose is all
  identities, as in every BVH file;
- ``local_translations[f, j]`` is the joint's position in its parent's frame: the OFFSET, with every
  axis that has a position channel replaced by that channel's value (how Blender and MotionBuilder read
  position channels; the root's position channels are therefore its world position).

Euler angles become matrices through ``rotations.euler_to_matrix`` (a vectorised product of elementary
rotations, tested against ``scipy.spatial.transform.Rotation.from_euler``, which is ~5x slower here),
grouped by rotation order so a whole file takes one call per distinct order; the writer uses scipy.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from core.errors import DoppelError
from mocap_retarget.rotations import euler_to_matrix

log = logging.getLogger(__name__)

# Lengths per file unit, in metres.
# "cmu" is the length unit of the CMU motion-capture database's ASF skeletons and of the widely used
# cgspeed BVH conversions: 1/0.45 inch = 0.056444 m (an adult is about 27-32 units tall).
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
# Typical standing height used by the unit detection (metres).
TYPICAL_HEIGHT_M = 1.7
# Limits on values: anything beyond is a corrupt file, not a motion (and overflows float32 downstream).
MAX_ABS_VALUE = 1e7            # an OFFSET or position channel, in file units (10 km in cm)
MAX_ABS_ANGLE_DEG = 1e6        # a rotation channel, degrees
MIN_FRAME_TIME_S = 1e-4        # 10,000 frames per second
MAX_FRAME_TIME_S = 60.0        # one frame a minute
_CHANNEL_RE = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)


class BvhError(DoppelError, ValueError):
    """A BVH file is malformed; the message names the file, the line and what is wrong."""


@dataclass
class Motion:
    """A skeleton and its animation, as read from (or written to) a BVH file.

    names: J joint names; parents (J,) int64 (-1 = root) in topological order (parents first).
    offsets (J, 3) float64 metres: rest offset of each joint from its parent (parent's frame).
    channels: per joint, its channel names as in the file (e.g. ["Xposition", ..., "Zrotation"]).
    end_sites: joint index -> (3,) offset in metres of each End Site below that joint.
    local_rotations (F, J, 3, 3) float64; local_translations (F, J, 3) float64 metres (see module doc).
    frame_time: seconds per frame. scale: metres per file unit. units: the unit name used.
    markers: (F, M, 3) metres, the optical markers a C3D take was solved from (NaN unseen; previews draw them), or
    None.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[list[str]]
    local_rotations: np.ndarray
    local_translations: np.ndarray
    frame_time: float
    end_sites: dict[int, list[np.ndarray]] = field(default_factory=dict)
    scale: float = 1.0
    units: str = "m"
    source: str = ""
    markers: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def frames(self, span: range) -> Motion:
        """The motion's frames in ``span`` (a range of frame indices, step 1) as a motion of its own (its frame 0
        is ``span.start``); the skeleton shared."""
        if span.step != 1 or not 0 <= span.start < span.stop <= self.num_frames:
            raise ValueError(f"{self.source or 'motion'}: frames {span.start}:{span.stop} are not a range of its "
                             f"{self.num_frames} frames")
        sl = slice(span.start, span.stop)
        return replace(self, local_rotations=self.local_rotations[sl].copy(),
                       local_translations=self.local_translations[sl].copy(),
                       markers=None if self.markers is None else self.markers[sl].copy())

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.source or 'motion'}: no joint named {name!r}") from None

    def rest_positions(self) -> np.ndarray:
        """(J, 3) world positions of the joints in the rest pose (root at its OFFSET), metres."""
        pos = np.zeros((self.num_joints, 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and positions (F, J, 3) metres of every joint in every frame."""
        return forward_kinematics(self.parents, self.local_rotations, self.local_translations)


def forward_kinematics(parents: np.ndarray, local_rot: np.ndarray, local_trans: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """parents (J,) topological; local_rot (F, J, 3, 3); local_trans (F, J, 3) -> world rot (F, J, 3, 3),
    world pos (F, J, 3). One batched matmul per joint, vectorised over frames."""
    F, J = local_rot.shape[:2]
    world_rot = np.empty_like(local_rot)
    world_pos = np.empty_like(local_trans)
    for j, p in enumerate(parents):
        if p < 0:
            world_rot[:, j] = local_rot[:, j]
            world_pos[:, j] = local_trans[:, j]
        else:
            world_rot[:, j] = world_rot[:, p] @ local_rot[:, j]
            world_pos[:, j] = world_pos[:, p] + np.einsum("fab,fb->fa", world_rot[:, p], local_trans[:, j])
    return world_rot, world_pos


# ----------------------------------------------------------------------------------------------- reading


def read_bvh(path: str | Path, units: str = "auto") -> Motion:
    """Read a BVH file. units: "auto" (detect from the skeleton's size) or one of UNIT_SCALES.

    Raises FileNotFoundError when the file is missing and BvhError when it is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BVH file not found")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")      # a leading BOM is accepted
    except OSError as e:
        raise BvhError(f"{path}: cannot read ({e})") from e
    return parse_bvh(text, units=units, source=str(path))


def parse_bvh(text: str, units: str = "auto", source: str = "<bvh>") -> Motion:
    """Parse BVH text (see read_bvh)."""
    if units != "auto" and units not in UNIT_SCALES:
        raise ValueError(f"units must be 'auto' or one of {sorted(UNIT_SCALES)}, got {units!r}")
    text = text.removeprefix("\ufeff")
    m = re.search(r"^[ \t]*MOTION[ \t]*\r?$", text, flags=re.MULTILINE)
    if not text.lstrip().upper().startswith("HIERARCHY"):
        raise BvhError(f"{source}: not a BVH file (it must start with HIERARCHY)")
    if m is None:
        raise BvhError(f"{source}: no MOTION section (truncated file?)")
    header_lines = text[: m.start()].count("\n")
    names, parents, offsets, channels, end_sites = _parse_hierarchy(text[: m.start()], source)
    data, frame_time = _parse_motion(text[m.end():], channels, source, header_lines + 1)
    local_rot, local_trans = _channels_to_transforms(data, offsets, channels)
    parents_arr = np.asarray(parents, dtype=np.int64)
    rest = Motion(names, parents_arr, offsets, channels, local_rot, local_trans, frame_time, end_sites,
                  source=source)
    if units == "auto":
        units, height = detect_units(rest)
        log.info("%s: skeleton %.3g file units tall -> units detected as %s", source, height, units)
    scale = UNIT_SCALES[units]
    rest.offsets = offsets * scale
    rest.local_translations = local_trans * scale
    rest.end_sites = {j: [o * scale for o in v] for j, v in end_sites.items()}
    rest.scale, rest.units = scale, units
    return rest


def skeleton_height(motion: Motion) -> float:
    """Size of the rest-pose skeleton (End Sites included) in its own units: the largest extent along
    one axis. For a standing humanoid that is its height (arm span for a T-pose is about the same)."""
    rest = motion.rest_positions()
    pts = [rest]
    for j, sites in motion.end_sites.items():
        pts += [rest[j] + o for o in sites]
    allp = np.vstack([p.reshape(-1, 3) for p in pts])
    return float((allp.max(0) - allp.min(0)).max())


def detect_units(motion: Motion) -> tuple[str, float]:
    """(unit name, height in file units): the unit that makes the skeleton closest to 1.7 m tall (in
    log scale): about 13-45 units tall reads as CMU units, 45-110 as inches, 110-1100 as cm, above
    that mm, below 3 as metres. Ambiguous cases (a child in cm reads as inches) need the override."""
    h = skeleton_height(motion)
    if not h > 0:
        raise BvhError(f"{motion.source}: the skeleton has zero size; cannot detect its units")
    best = min(UNIT_SCALES, key=lambda u: abs(math.log(h * UNIT_SCALES[u] / TYPICAL_HEIGHT_M)))
    return best, h


def _parse_hierarchy(text: str, source: str):
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, list[np.ndarray]] = {}
    stack: list[int] = []          # joint index per open brace (-2 = End Site)
    pending: tuple[str, int] | None = None   # ("joint"|"end", index)
    current: int | None = None     # the block the next OFFSET/CHANNELS belongs to
    lines = text.splitlines()
    for ln, raw in enumerate(lines, start=1):
        tok = raw.split()
        if not tok:
            continue
        key = tok[0].upper()
        where = f"{source}:{ln}"
        if key == "HIERARCHY":
            continue
        if key in ("ROOT", "JOINT"):
            if len(tok) < 2:
                raise BvhError(f"{where}: {tok[0]} without a name")
            if key == "JOINT" and not stack:
                raise BvhError(f"{where}: JOINT outside of any ROOT block")
            if key == "ROOT" and stack:
                raise BvhError(f"{where}: ROOT inside another joint")
            if key == "ROOT" and names:
                raise BvhError(f"{where}: a second ROOT (only one skeleton per file is supported)")
            parent = -1 if key == "ROOT" else _innermost_joint(stack, where)
            name = " ".join(tok[1:])
            if name in names:
                raise BvhError(f"{where}: joint name {name!r} is used twice; joint names must be unique (rename one)")
            names.append(name)
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = ("joint", len(names) - 1)
        elif key == "END":
            parent = _innermost_joint(stack, where)
            end_sites.setdefault(parent, []).append(np.zeros(3))
            pending = ("end", parent)
        elif key == "{":
            if pending is None:
                raise BvhError(f"{where}: '{{' without ROOT/JOINT/End Site before it")
            stack.append(pending[1] if pending[0] == "joint" else -2)
            current = pending
            pending = None
        elif key == "}":
            if not stack:
                raise BvhError(f"{where}: unbalanced '}}'")
            stack.pop()
            current = None
        elif key == "OFFSET":
            if current is None:
                raise BvhError(f"{where}: OFFSET outside a joint block")
            vals = _offset(tok, raw, where)
            if current[0] == "joint":
                offsets[current[1]] = vals
            else:
                end_sites[current[1]][-1] = np.asarray(vals)
        elif key == "CHANNELS":
            if current is None or current[0] != "joint":
                raise BvhError(f"{where}: CHANNELS outside a joint block")
            channels[current[1]] = _channel_list(tok, raw, where)
        else:
            raise BvhError(f"{where}: unexpected {tok[0]!r} in HIERARCHY")
    if stack:
        raise BvhError(f"{source}: HIERARCHY ends with {len(stack)} unclosed '{{' (truncated file?)")
    if not names:
        raise BvhError(f"{source}: HIERARCHY has no ROOT joint")
    return names, parents, np.asarray(offsets, dtype=np.float64), channels, end_sites


def _offset(tok: list[str], raw: str, where: str) -> list[float]:
    """The 3 numbers of an OFFSET line (finite, within MAX_ABS_VALUE)."""
    if len(tok) != 4:
        raise BvhError(f"{where}: OFFSET needs 3 numbers inside a joint block, got {raw.strip()!r}")
    vals = _floats(tok[1:], where)
    if not all(math.isfinite(v) and abs(v) <= MAX_ABS_VALUE for v in vals):
        raise BvhError(f"{where}: OFFSET values must be finite and within +-{MAX_ABS_VALUE:g}, got "
                       f"{' '.join(tok[1:])[:80]!r}")
    return vals


def _channel_list(tok: list[str], raw: str, where: str) -> list[str]:
    """The channel names of a CHANNELS line (count checked, each known and listed once), normalised."""
    try:
        n = int(tok[1])
    except (IndexError, ValueError):
        raise BvhError(f"{where}: CHANNELS needs a count, got {raw.strip()!r}") from None
    chans = tok[2:]
    if len(chans) != n:
        raise BvhError(f"{where}: CHANNELS says {n} but lists {len(chans)}")
    for c in chans:
        if not _CHANNEL_RE.match(c):
            raise BvhError(f"{where}: unknown channel {c!r} (expected X/Y/Z + position/rotation)")
    norm = [c.lower() for c in chans]
    if len(set(norm)) != len(norm):
        raise BvhError(f"{where}: a channel is listed twice in {' '.join(chans)!r} (each axis once)")
    return [c[0].upper() + c[1:].lower() for c in chans]


def _innermost_joint(stack: list[int], where: str) -> int:
    if not stack or stack[-1] < 0:
        raise BvhError(f"{where}: a joint or End Site must sit inside a joint block")
    return stack[-1]


def _floats(tokens: list[str], where: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise BvhError(f"{where}: expected numbers, got {' '.join(tokens)!r}") from None


def _parse_motion(text: str, channels: list[list[str]], source: str, first_line: int) -> tuple[np.ndarray, float]:
    n_chan = sum(len(c) for c in channels)
    # The two header lines: "Frames: N" and "Frame Time: t" (any spacing, any case).
    lines_iter = iter(enumerate(text.splitlines(keepends=True), start=first_line))
    frames = frame_time = None
    consumed = 0
    for ln, raw in lines_iter:
        consumed += len(raw)
        s = " ".join(raw.split())          # tabs or several spaces between words
        if not s:
            continue
        low = s.lower().replace(" :", ":")
        if low.startswith("frames:"):
            try:
                frames = int(s.split(":", 1)[1])
            except ValueError:
                raise BvhError(f"{source}:{ln}: bad frame count {s!r}") from None
        elif low.startswith("frame time:"):
            try:
                frame_time = float(s.split(":", 1)[1])
            except ValueError:
                raise BvhError(f"{source}:{ln}: bad frame time {s!r}") from None
            data_line = ln + 1
            break
        else:
            raise BvhError(f"{source}:{ln}: expected 'Frames:' and 'Frame Time:' after MOTION, got {s[:40]!r}")
    if frames is None or frame_time is None:
        raise BvhError(f"{source}: MOTION section lacks 'Frames:' or 'Frame Time:' (truncated file?)")
    if frames < 0:
        raise BvhError(f"{source}: negative frame count {frames}")
    if not MIN_FRAME_TIME_S <= frame_time <= MAX_FRAME_TIME_S:
        raise BvhError(f"{source}:{data_line - 1}: Frame Time must be between {MIN_FRAME_TIME_S:g} and "
                       f"{MAX_FRAME_TIME_S:g} seconds, got {frame_time:g}")
    body = text[consumed:]
    if frames == 0:
        if body.strip():
            raise BvhError(f"{source}: 'Frames: 0' but there is motion data after it")
        raise BvhError(f"{source}: the file has zero frames of motion")
    # Fast path: numpy reads every whitespace-separated number at once; any problem -> slow diagnosis.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = np.fromstring(body, dtype=np.float64, sep=" ")
    limits = _channel_limits(channels)
    if flat.size == frames * n_chan and n_chan > 0 and np.isfinite(flat).all() and _line_count_ok(body, frames) \
            and (np.abs(flat.reshape(frames, n_chan)) <= limits).all():
        return flat.reshape(frames, n_chan), frame_time
    _diagnose_motion(body, frames, n_chan, source, data_line, limits)
    raise BvhError(f"{source}: motion data could not be read")  # _diagnose_motion raises first


def _line_count_ok(body: str, frames: int) -> bool:
    n = body.count("\n") + (0 if body.endswith("\n") else 1)
    if n == frames:
        return True
    return sum(1 for s in body.splitlines() if s.strip()) == frames


def _channel_limits(channels: list[list[str]]) -> np.ndarray:
    """(n_chan,) the largest absolute value each channel may hold (positions MAX_ABS_VALUE, angles
    MAX_ABS_ANGLE_DEG)."""
    return np.array([MAX_ABS_VALUE if c.endswith("position") else MAX_ABS_ANGLE_DEG for ch in channels for c in ch])


def _diagnose_motion(body: str, frames: int, n_chan: int, source: str, first_line: int,
                     limits: np.ndarray) -> None:
    if n_chan == 0:
        raise BvhError(f"{source}: the skeleton has no CHANNELS, so it cannot carry motion")
    rows = [(first_line + i, s) for i, s in enumerate(body.splitlines()) if s.strip()]
    for ln, s in rows:
        toks = s.split()
        for k, t in enumerate(toks):
            try:
                v = float(t)
            except ValueError:
                raise BvhError(f"{source}:{ln}: non-numeric value {t!r} in the motion data") from None
            if not math.isfinite(v):
                raise BvhError(f"{source}:{ln}: non-finite value {t[:40]!r} in the motion data")
            if k < len(limits) and abs(v) > limits[k]:
                raise BvhError(f"{source}:{ln}: value {t[:40]!r} (column {k + 1}) is beyond +-{limits[k]:g}: "
                               f"not a motion (corrupt file?)")
        if len(toks) != n_chan:
            last = ln == rows[-1][0]
            hint = " (truncated file?)" if last and len(toks) < n_chan else ""
            raise BvhError(f"{source}:{ln}: {len(toks)} values on this frame line, the skeleton has "
                           f"{n_chan} channels{hint}")
    if len(rows) != frames:
        hint = " (truncated file?)" if len(rows) < frames else ""
        raise BvhError(f"{source}: 'Frames: {frames}' but the file has {len(rows)} frame lines{hint}")


def _channels_to_transforms(data: np.ndarray, offsets: np.ndarray, channels: list[list[str]]
                            ) -> tuple[np.ndarray, np.ndarray]:
    F = data.shape[0]
    J = len(channels)
    local_trans = np.broadcast_to(offsets, (F, J, 3)).copy()
    local_rot = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    groups: dict[str, list[tuple[int, list[int]]]] = {}
    col = 0
    for j, chans in enumerate(channels):
        order, rot_cols = "", []
        for c in chans:
            axis = "XYZ".index(c[0])
            if c[1:].lower() == "position":
                local_trans[:, j, axis] = data[:, col]
            else:
                order += c[0]
                rot_cols.append(col)
            col += 1
        if order:
            if len(set(order)) != len(order):
                raise BvhError(f"joint {j}: repeated rotation axis in channel order {order!r}")
            groups.setdefault(order, []).append((j, rot_cols))
    for order, members in groups.items():
        js = [j for j, _ in members]
        cols = np.array([c for _, c in members])                      # (n, k)
        angles = data[:, cols]                                          # (F, n, k) degrees
        local_rot[:, js] = euler_to_matrix(order, angles)           # tested against scipy
    return local_rot, local_trans


# ----------------------------------------------------------------------------------------------- writing


def format_bvh(motion: Motion, units: str | None = None, precision: int = 6) -> str:
    """BVH text for ``motion``. Lengths are written in ``units`` (default: the motion's own units).

    Each joint keeps its channel list; rotation matrices become Euler angles (in the order of its rotation
    channels) through scipy.
    """
    inv = _unit_inverse(motion, units)
    buf = io.StringIO()
    np.savetxt(buf, _frame_columns(motion, inv), fmt=f"%.{precision}f", delimiter=" ")
    return _header_text(motion, motion.num_frames, inv, precision) + buf.getvalue()


def _unit_inverse(motion: Motion, units: str | None) -> float:
    units = units or motion.units
    if units not in UNIT_SCALES:
        raise ValueError(f"units must be one of {sorted(UNIT_SCALES)}, got {units!r}")
    if motion.num_frames == 0:
        raise ValueError("cannot write a BVH file with zero frames")
    return 1.0 / UNIT_SCALES[units]


def _header_text(motion: Motion, frames: int, inv: float, precision: int) -> str:
    """The HIERARCHY block and the MOTION lines up to the first frame's row (``frames`` on its Frames line)."""
    J = motion.num_joints
    children: dict[int, list[int]] = {j: [] for j in range(J)}
    for j, p in enumerate(motion.parents):
        if p >= 0:
            children[int(p)].append(j)
    fmt = f"{{:.{precision}f}}"
    out = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "\t" * depth
        kw = "ROOT" if motion.parents[j] < 0 else "JOINT"
        out.append(f"{ind}{kw} {motion.names[j]}")
        out.append(f"{ind}{{")
        off = " ".join(fmt.format(v) for v in motion.offsets[j] * inv)
        out.append(f"{ind}\tOFFSET {off}")
        out.append(f"{ind}\tCHANNELS {len(motion.channels[j])} {' '.join(motion.channels[j])}")
        for c in children[j]:
            emit(c, depth + 1)
        for site in motion.end_sites.get(j, []):
            out.append(f"{ind}\tEnd Site")
            out.append(f"{ind}\t{{")
            out.append(f"{ind}\t\tOFFSET {' '.join(fmt.format(v) for v in np.asarray(site) * inv)}")
            out.append(f"{ind}\t}}")
        out.append(f"{ind}}}")

    for r in [j for j in range(J) if motion.parents[j] < 0]:
        emit(r, 0)
    out += ["MOTION", f"Frames: {frames}", f"Frame Time: {motion.frame_time:.8f}"]
    return "\n".join(out) + "\n"


def _frame_columns(motion: Motion, inv: float) -> np.ndarray:
    """(F, channels) the frames' channel values: positions in the written units, rotations in degrees."""
    cols = []
    for j, chans in enumerate(motion.channels):
        order = "".join(c[0] for c in chans if c.endswith("rotation"))
        eul = None
        if order:
            with warnings.catch_warnings():   # gimbal lock: scipy picks one valid solution, which is fine
                warnings.simplefilter("ignore", UserWarning)
                eul = Rotation.from_matrix(motion.local_rotations[:, j]).as_euler(order.upper(), degrees=True)
        k = 0
        for c in chans:
            axis = "XYZ".index(c[0])
            if c.endswith("position"):
                cols.append(motion.local_translations[:, j, axis] * inv)
            else:
                cols.append(eul[:, k])
                k += 1
    return np.stack(cols, axis=1) if cols else np.zeros((motion.num_frames, 0))


def write_bvh(path: str | Path, motion: Motion, units: str | None = None, precision: int = 6) -> Path:
    """Write ``motion`` to ``path`` atomically (see format_bvh); returns the path."""
    from core.storage import atomic_write_text

    return atomic_write_text(path, format_bvh(motion, units=units, precision=precision))


def write_bvh_frames(path: str | Path, header: Motion, chunks: Iterable[Motion], frames: int,
                     units: str | None = None, precision: int = 6) -> Path:
    """Write, atomically, the BVH whose hierarchy is ``header``'s and whose frames are those of ``chunks`` (motions
    on the same skeleton, in order, ``frames`` in all) one chunk at a time: a long take's file is the same bytes
    `write_bvh` writes of the whole motion, made while holding one chunk. ValueError when the chunks' frames do
    not add up to ``frames`` (nothing is written)."""
    from core.storage import atomic_open

    inv = _unit_inverse(header, units)
    written = 0
    with atomic_open(path, "w") as f:
        f.write(_header_text(header, frames, inv, precision))
        for part in chunks:
            if part.channels != header.channels:
                raise ValueError(f"{path}: a chunk of frames is not on the header's skeleton")
            np.savetxt(f, _frame_columns(part, inv), fmt=f"%.{precision}f", delimiter=" ")
            written += part.num_frames
        if written != frames:
            raise ValueError(f"{path}: {written} frames written, the header says {frames}")
    return Path(path)
