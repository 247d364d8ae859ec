"""Xsens MVN's MVNX export (XML; MVN Analyze / Animate, File > Export > MVNX) as a mocap clip.

An MVNX file holds one subject: its segments (Pelvis, L5, ..., LeftToe: 23 in the full body model, fewer or more in
other configurations), each with named points in the segment's frame (``pos_b``, metres), joints connecting a
point of a parent segment to the same point of a child (``connector1`` Parent/jPoint, ``connector2``
Child/jPoint), and frames. A frame of type ``normal`` carries every segment's ``orientation`` (quaternion w x y z,
segment to global) and ``position`` (segment origin in the global frame, metres); the frames of type ``identity``,
``tpose``, ``tpose-isb`` and ``npose`` before them are calibration poses and are not part of the take. The global
frame is Z up, X forward (the heading at calibration), Y left; with every orientation the identity the segments'
axes are the global axes and the model stands in a T-pose (the arms along -Y / +Y), which is the rest pose read
here: the segments' origins chained through the joints' points, the rotations the identity.

Read with ``xml.etree.ElementTree.iterparse`` (a frame's element is cleared once read: an hour at 240 Hz does not
hold its XML in memory); everything else in a frame (velocities, sensor data, joint angles, contacts) is ignored.
Joint names are the segment labels, which `mocap_retarget.roles` maps (Xsens naming). Leaf segments (head, hands,
toes) get an End Site at their farthest point (top of head, top of hand, toe tip).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import Motion
from mocap_retarget.world_motion import ClipError, motion_from_world

log = logging.getLogger(__name__)

# Xsens global (x forward, y left, z up) -> Doppel (x left, y up, z forward): a cyclic permutation (det +1).
XSENS_TO_DOPPEL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


@dataclass
class _Subject:
    """What the file's header said, and its take's frames as read."""

    fps: float = 0.0
    labels: list[str] = field(default_factory=list)
    points: list[dict[str, np.ndarray]] = field(default_factory=list)   # per segment: point label -> pos_b (3,)
    joints: list[tuple[str, str, str]] = field(default_factory=list)    # (parent, child, point label)
    orientations: list[np.ndarray] = field(default_factory=list)        # per normal frame (S, 4) wxyz
    positions: list[np.ndarray] = field(default_factory=list)           # per normal frame (S, 3)
    skipped: dict[str, int] = field(default_factory=dict)               # frame type -> count


def read_mvnx_clip(path: str | Path) -> Motion:
    """Read an MVNX file's take (its ``normal`` frames) into a Motion in Doppel's frame (metres, +Y up, the
    subject facing +Z at rest). Raises ClipError naming the file and what is wrong."""
    path = Path(path)
    subject = _parse(path)
    names, parents, points = _hierarchy(subject, path)
    keep = [subject.labels.index(n) for n in names]
    F = len(subject.orientations)
    q = np.stack(subject.orientations)[:, keep]                     # (F, J, 4) w x y z
    p = np.stack(subject.positions)[:, keep]                        # (F, J, 3)
    norms = np.linalg.norm(q, axis=-1)
    if not (np.isfinite(q).all() and np.isfinite(p).all()) or (norms < 0.5).any():
        bad = int(np.argmax(~np.isfinite(q).all(axis=(1, 2)) | ~np.isfinite(p).all(axis=(1, 2))
                            | (norms < 0.5).any(axis=1)))
        raise ClipError(f"{path}: frame {bad} of the take has invalid segment orientations or positions")
    R = Rotation.from_quat(q.reshape(-1, 4), scalar_first=True).as_matrix().reshape(F, len(names), 3, 3)
    C = XSENS_TO_DOPPEL
    world = np.zeros((F, len(names), 4, 4))
    world[..., :3, :3] = C @ R @ C.T
    world[..., :3, 3] = p @ C.T
    world[..., 3, 3] = 1.0
    rest = np.tile(np.eye(4), (len(names), 1, 1))
    rest[:, :3, 3] = _rest_origins(names, parents, points, subject.joints, path) @ C.T
    tips = {j: _tip(points[j]) for j in range(len(names)) if j not in parents and points[j]}
    sites = {j: [tip @ C.T] for j, tip in tips.items() if np.linalg.norm(tip) > 1e-6}
    if subject.skipped:
        log.info("%s: calibration frames left out of the take: %s", path,
                 ", ".join(f"{n} {t}" for t, n in subject.skipped.items()))
    return motion_from_world(names, parents, rest, world, subject.fps, str(path), end_sites=sites)


def _parse(path: Path) -> _Subject:
    """Stream the file: header (frame rate, segments, points, joints), then each frame's orientation/position."""
    s = _Subject()
    subjects = 0
    try:
        for event, el in ET.iterparse(path, events=("start", "end")):
            tag = el.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "subject":
                    subjects += 1
                    if subjects > 1:
                        raise ClipError(f"{path}: several subjects in one MVNX file; export each actor alone")
                    s.fps = _frame_rate(el.get("frameRate"), path)
                continue
            if tag == "segment" and el.get("label"):
                s.labels.append(el.get("label"))
                s.points.append(_points(el, path))
            elif tag == "joint" and el.get("label") is not None:
                s.joints.append(_connection(el, path))
            elif tag == "frame":
                _frame(el, s, path)
                el.clear()
    except ET.ParseError as e:
        raise ClipError(f"{path}: not a readable MVNX file (XML error: {e})") from e
    if subjects == 0:
        raise ClipError(f"{path}: no <subject> in this file: not an Xsens MVNX export")
    if not s.orientations:
        raise ClipError(f"{path}: the MVNX file has no frames of the take (only calibration poses)")
    return s


def _frame_rate(text: str | None, path: Path) -> float:
    try:
        fps = float(text) if text is not None else float("nan")
    except ValueError:
        fps = float("nan")
    if not (np.isfinite(fps) and fps > 0):
        raise ClipError(f"{path}: the subject's frameRate must be > 0, got {text!r}")
    return fps


def _points(el: ET.Element, path: Path) -> dict[str, np.ndarray]:
    out = {}
    for pt in el.iter():
        if pt.tag.rsplit("}", 1)[-1] != "point":
            continue
        pos = next((c for c in pt if c.tag.rsplit("}", 1)[-1] == "pos_b"), None)
        if pos is None or not pos.text:
            continue
        v = _numbers(pos.text, 3, f"segment {el.get('label')} point {pt.get('label')}", path)
        out[pt.get("label")] = v
    return out


def _connection(el: ET.Element, path: Path) -> tuple[str, str, str]:
    """(parent segment, child segment, point label) of a joint element."""
    ends = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in el}
    try:
        parent, point = ends["connector1"].split("/", 1)
        child, point2 = ends["connector2"].split("/", 1)
    except (KeyError, ValueError) as e:
        raise ClipError(f"{path}: joint {el.get('label')!r} lacks connector1/connector2 'Segment/point'") from e
    if point2 != point:
        log.debug("%s: joint %s connects %s to %s", path, el.get("label"), point, point2)
    return parent, child, point


def _frame(el: ET.Element, s: _Subject, path: Path) -> None:
    kind = el.get("type", "normal")
    if kind != "normal":
        s.skipped[kind] = s.skipped.get(kind, 0) + 1
        return
    S = len(s.labels)
    if S == 0:
        raise ClipError(f"{path}: frames before any <segment>: not an MVNX layout Doppel reads")
    where = f"frame {el.get('index', len(s.orientations))}"
    texts = {c.tag.rsplit("}", 1)[-1]: c.text for c in el if c.tag.rsplit("}", 1)[-1] in ("orientation", "position")}
    if len(texts) < 2:
        raise ClipError(f"{path}: {where} has no {'orientation' if 'orientation' not in texts else 'position'}")
    s.orientations.append(_numbers(texts["orientation"], 4 * S, f"{where} orientation", path).reshape(S, 4))
    s.positions.append(_numbers(texts["position"], 3 * S, f"{where} position", path).reshape(S, 3))


def _numbers(text: str | None, count: int, what: str, path: Path) -> np.ndarray:
    try:
        v = np.array((text or "").split(), dtype=np.float64)
    except ValueError as e:
        raise ClipError(f"{path}: {what}: not numbers") from e
    if v.size != count:
        raise ClipError(f"{path}: {what}: {v.size} values, expected {count}")
    return v


def _hierarchy(s: _Subject, path: Path) -> tuple[list[str], list[int], list[dict[str, np.ndarray]]]:
    """Segments reachable from the root through the joints, parents before children: names, parent indices, and
    each one's points. A segment joined to nothing (a prop without a joint) is left out and said."""
    if not s.labels:
        raise ClipError(f"{path}: no <segment> in the MVNX file")
    parent_of: dict[str, str] = {}
    for parent, child, _ in s.joints:
        if child in parent_of:
            raise ClipError(f"{path}: segment {child!r} has two parents in <joints>")
        parent_of[child] = parent
    unknown = {n for pc in parent_of.items() for n in pc} - set(s.labels)
    if unknown:
        raise ClipError(f"{path}: <joints> name segments not in <segments>: {', '.join(sorted(unknown))}")
    roots = [n for n in s.labels if n not in parent_of and n in set(parent_of.values())]
    if len(roots) != 1:
        raise ClipError(f"{path}: the segments form {len(roots)} trees ({', '.join(roots) or 'none'}); one "
                        "skeleton rooted at the pelvis expected")
    children: dict[str, list[str]] = {}
    for n in s.labels:
        if n in parent_of:
            children.setdefault(parent_of[n], []).append(n)
    names, stack = [], [roots[0]]
    while stack:
        n = stack.pop()
        names.append(n)
        stack.extend(reversed(children.get(n, [])))
    left = [n for n in s.labels if n not in names]
    if left:
        log.warning("%s: segments joined to no skeleton left out: %s", path, ", ".join(left))
    index = {n: i for i, n in enumerate(names)}
    parents = [index[parent_of[n]] if n in parent_of else -1 for n in names]
    points = [s.points[s.labels.index(n)] for n in names]
    return names, parents, points


def _rest_origins(names: list[str], parents: list[int], points: list[dict[str, np.ndarray]],
                  joints: list[tuple[str, str, str]], path: Path) -> np.ndarray:
    """(J, 3) segment origins in Xsens axes with every orientation the identity (the T-pose), the root at 0:
    a child's origin is its parent's plus the joint point in the parent minus the same point in the child."""
    point_of = {child: point for _, child, point in joints}
    origins = np.zeros((len(names), 3))
    for j, p in enumerate(parents):
        if p < 0:
            continue
        pt = point_of[names[j]]
        if pt not in points[p] or pt not in points[j]:
            seg = names[p] if pt not in points[p] else names[j]
            raise ClipError(f"{path}: joint point {pt!r} is not among segment {seg}'s points")
        origins[j] = origins[p] + points[p][pt] - points[j][pt]
    return origins


def _tip(points: dict[str, np.ndarray]) -> np.ndarray:
    """(3,) a leaf segment's farthest point from its origin (top of head, top of hand, toe tip), segment axes."""
    return max(points.values(), key=lambda v: float(np.linalg.norm(v)))
