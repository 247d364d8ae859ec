"""glTF 2.0 (.glb / .gltf) skins with animation as a mocap clip (pygltflib).

The joints of every skin of one character are the skeleton (of several characters, the largest); the node transforms
(TRS) are the rest pose; the animation ``take`` names (a file may hold several: `mocap_retarget.clip_takes`), else
the one with the most keyframes, drives them (LINEAR and STEP samplers; CUBICSPLINE keys are used without their
tangents; sparse accessors read). glTF is Y-up, metres: Doppel's frame. glTF stores seconds, not frames: the frame
rate is the keyframe spacing (median), snapped by the caller.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.world_motion import ClipError, motion_from_world, unique_names

log = logging.getLogger(__name__)

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_NORM = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}


def read_gltf_clip(path: str | Path, take: str | None = None, chosen: dict | None = None,
                   subject: str | None = None) -> Motion:
    """Read ``path`` (.glb / .gltf) into a Motion (see the module docstring): the animation named ``take``
    (`mocap_retarget.clip_takes.pick_take`), else the one with the most keyframes. ``chosen`` (a dict, filled in):
    "take" (the name read) and "takes" (every animation's name -> frames). ``subject``: which skeleton of several
    (`_skeleton_joints`). Raises ClipError naming the file."""
    import pygltflib

    path = Path(path)
    try:
        gltf = pygltflib.GLTF2().load(str(path))
        if gltf is None:
            raise ValueError("not a glTF file")
        gltf.convert_buffers(pygltflib.BufferFormat.BINARYBLOB)
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as e:
        raise ClipError(f"{path}: unreadable glTF ({type(e).__name__}: {e})") from e
    if "EXT_meshopt_compression" in (gltf.extensionsRequired or []):     # its bytes would read as garbage
        raise ClipError(f"{path}: its buffers are compressed (EXT_meshopt_compression, gltfpack -c) with no fallback; "
                        "write it without compression first (gltfpack without -c, or gltf-transform copy IN OUT)")
    if not gltf.skins:
        raise ClipError(f"{path}: no skin (skeleton) in this glTF file")
    if not gltf.animations:
        raise ClipError(f"{path}: no animation in this glTF file")
    blob = gltf.binary_blob() or b""
    parent_node = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    joints = _skeleton_joints(gltf, parent_node, path, subject)
    nodes = _nodes_needed(joints, parent_node)
    anim, times = _choose_animation(gltf, blob, path, take, chosen, set(nodes))
    local = {n: _node_tracks(gltf, blob, anim, n, times, path) for n in nodes}
    world = _world(nodes, parent_node, local)
    rest = _world(nodes, parent_node, {n: _static_matrix(gltf.nodes[n])[None] for n in nodes})
    parents = []
    for n in joints:
        p = parent_node.get(n)
        while p is not None and p not in joints:
            p = parent_node.get(p)
        parents.append(-1 if p is None else joints.index(p))
    names = [gltf.nodes[n].name or f"joint{n}" for n in joints]
    paths = [_node_path(gltf, n, parent_node) for n in joints]
    W = np.stack([world[n] for n in joints], axis=1)
    R = np.stack([rest[n][0] for n in joints], axis=0)
    fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 30.0
    return motion_from_world(unique_names(names, paths), parents, R, W, fps, str(path))


def _skeleton_joints(gltf, parent_node: dict[int, int], path: Path, subject: str | None = None) -> list[int]:
    """The skeleton's joints, in node order: the joints of every skin of one character. Exporters that write a skin
    per mesh list only the joints that mesh uses (a head's skin without the legs), so the first skin alone can miss
    most of the body; skins whose joints hang from the same root joints are one character's, and of several
    characters (two performers in one file) the one ``subject`` names (`_skeleton_name`), else the one with the
    most joints, the others named (a warning)."""
    from mocap_retarget.clip_takes import note_skeletons, pick_take, unique_take_names

    every = {int(j) for skin in gltf.skins for j in (skin.joints or [])}

    def joint_root(n: int) -> int:
        top, p = n, parent_node.get(n)
        while p is not None:
            top = p if p in every else top
            p = parent_node.get(p)
        return top

    owner = {r: r for r in map(joint_root, every)}       # union-find over the root joints: a skin joins its roots

    def find(r: int) -> int:
        while owner[r] != r:
            r = owner[r]
        return r

    for skin in gltf.skins:
        roots = [find(joint_root(int(j))) for j in (skin.joints or [])]
        for r in roots[1:]:
            owner[find(r)] = find(roots[0])
    groups: dict[int, list[int]] = {}
    for j in sorted(every):
        groups.setdefault(find(joint_root(j)), []).append(j)
    ranked = sorted(groups.values(), key=len, reverse=True)
    names = unique_take_names([_skeleton_name(gltf, g, joint_root, parent_node) for g in ranked])
    index = pick_take(path, names, subject, 0, "skeleton")
    note_skeletons(path, {n: len(g) for n, g in zip(names, ranked, strict=True)}, names[index], subject)
    return ranked[index]


def _skeleton_name(gltf, joints: list[int], joint_root, parent_node: dict[int, int]) -> str:
    """A skeleton's name: the node holding its root joints (an armature: 'Stunt2', 'Armature') when they share one,
    else its root joints' names."""
    roots = sorted({joint_root(j) for j in joints})
    holders = {parent_node.get(r) for r in roots}
    if len(holders) == 1 and None not in holders and gltf.nodes[holders.pop()].name:
        return gltf.nodes[parent_node[roots[0]]].name
    return "+".join(gltf.nodes[r].name or f"node{r}" for r in roots)


def _choose_animation(gltf, blob: bytes, path: Path, take: str | None, chosen: dict | None, skeleton: set[int]):
    """(the animation to read, its frame times): ``take`` by name, else of those that move a node of ``skeleton``
    (a file of two performers may hold an animation of each) the one with the most keyframes."""
    from mocap_retarget.clip_takes import note_takes, pick_take, unique_take_names

    names = unique_take_names([a.name for a in gltf.animations])
    keys = [max((_accessor(gltf, blob, a.samplers[c.sampler].input, path).size for c in a.channels), default=0)
            if any(c.target.node in skeleton for c in a.channels) else -1 for a in gltf.animations]
    index = pick_take(path, names, take, int(np.argmax(keys)))
    if keys[index] < 0:
        log.warning("%s: take %r moves no joint of the skeleton read: it stays in its rest pose", path, names[index])
    times = _frame_times(gltf, blob, gltf.animations[index], path)
    takes = {n: (len(times) if i == index else _frame_count(gltf, blob, a, path))
             for i, (n, a) in enumerate(zip(names, gltf.animations, strict=True))}
    movers = {n: f for (n, f), k in zip(takes.items(), keys, strict=True) if k >= 0}   # the takes moving it
    note_takes(path, movers or takes, names[index], take)
    if chosen is not None:
        chosen.update(take=names[index], takes=takes)
    return gltf.animations[index], times


def _frame_count(gltf, blob: bytes, anim, path: Path) -> int:
    """The frames of ``anim`` at its keyframe spacing (0 for an animation that cannot be read)."""
    try:
        return len(_frame_times(gltf, blob, anim, path))
    except (ClipError, ValueError, IndexError):
        return 0


def _accessor(gltf, blob: bytes, index: int, path: Path) -> np.ndarray:
    """An accessor's data as float64 (count, width) (normalised integers scaled to [-1, 1] / [0, 1])."""
    acc = gltf.accessors[index]
    dtype = np.dtype(_COMPONENTS[acc.componentType])
    width = _WIDTH[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, width))
    else:
        out = _view_data(gltf, blob, acc.bufferView, acc.byteOffset or 0, acc.count, dtype, width, index, path)
    if acc.sparse is not None and acc.sparse.count:           # glTF 3.6.2.3: these elements replace the base's
        sp = acc.sparse
        rows = _view_data(gltf, blob, sp.indices.bufferView, sp.indices.byteOffset or 0, sp.count,
                          np.dtype(_COMPONENTS[sp.indices.componentType]), 1, index, path)[:, 0].astype(np.int64)
        if rows.min() < 0 or rows.max() >= acc.count:
            raise ClipError(f"{path}: accessor {index}: a sparse index is outside its {acc.count} elements")
        out[rows] = _view_data(gltf, blob, sp.values.bufferView, sp.values.byteOffset or 0, sp.count, dtype, width,
                               index, path)
    if acc.normalized and dtype.type in _NORM:
        out = np.maximum(out / _NORM[dtype.type], -1.0)
    return out


def _view_data(gltf, blob: bytes, view_index: int, offset: int, count: int, dtype: np.dtype, width: int,
               index: int, path: Path) -> np.ndarray:
    """(count, width) float64 elements of ``dtype`` from a bufferView, ``offset`` bytes in (its stride honoured)."""
    view = gltf.bufferViews[view_index]
    start = (view.byteOffset or 0) + offset
    stride = view.byteStride or dtype.itemsize * width
    end = start + stride * (count - 1) + dtype.itemsize * width
    if end > len(blob) or count < 0:
        raise ClipError(f"{path}: accessor {index} runs past the end of its buffer")
    raw = np.lib.stride_tricks.as_strided(np.frombuffer(blob, dtype=np.uint8, count=end - start, offset=start),
                                          shape=(count, dtype.itemsize * width), strides=(stride, 1))
    return np.ascontiguousarray(raw).view(dtype).reshape(count, width).astype(np.float64)


def _frame_times(gltf, blob: bytes, anim, path: Path) -> np.ndarray:
    """Uniform frame times (seconds) covering the animation at its keyframe spacing."""
    inputs = [_accessor(gltf, blob, anim.samplers[c.sampler].input, path)[:, 0] for c in anim.channels]
    t0, t1 = min(float(t.min()) for t in inputs if t.size), max(float(t.max()) for t in inputs if t.size)
    steps = [np.median(np.diff(t)) for t in inputs if t.size > 1]
    dt = float(min(steps)) if steps else 1.0 / 30.0
    if not dt > 0:
        raise ClipError(f"{path}: keyframe times do not increase")
    n = int(round((t1 - t0) / dt)) + 1
    return t0 + dt * np.arange(n)


def _nodes_needed(joints: list[int], parent_node: dict[int, int]) -> list[int]:
    """The joints and all their ancestors, parents first."""
    seen: list[int] = []
    for n in joints:
        chain = []
        while n is not None and n not in seen:
            chain.append(n)
            n = parent_node.get(n)
        seen.extend(reversed(chain))
    return seen


def _static_matrix(node) -> np.ndarray:
    if node.matrix is not None and len(node.matrix) == 16:
        return np.array(node.matrix, dtype=np.float64).reshape(4, 4).T       # column-major
    return _trs(np.array(node.translation or [0, 0, 0], dtype=np.float64)[None],
                np.array(node.rotation or [0, 0, 0, 1], dtype=np.float64)[None],
                np.array(node.scale or [1, 1, 1], dtype=np.float64)[None])[0]


def _trs(t: np.ndarray, q_xyzw: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(F, 4, 4) from translations (F, 3), quaternions (F, 4) xyzw and scales (F, 3)."""
    from scipy.spatial.transform import Rotation

    q = q_xyzw / np.linalg.norm(q_xyzw, axis=-1, keepdims=True)
    M = np.zeros((len(t), 4, 4))
    M[:, :3, :3] = Rotation.from_quat(q).as_matrix() * s[:, None, :]
    M[:, :3, 3] = t
    M[:, 3, 3] = 1.0
    return M


def _node_tracks(gltf, blob: bytes, anim, node: int, times: np.ndarray, path: Path) -> np.ndarray:
    """(F, 4, 4) local matrices of ``node`` at ``times``: animated channels sampled, others static."""
    nd = gltf.nodes[node]
    F = len(times)
    t = np.tile(np.array(nd.translation or [0, 0, 0], dtype=np.float64), (F, 1))
    q = np.tile(np.array(nd.rotation or [0, 0, 0, 1], dtype=np.float64), (F, 1))
    s = np.tile(np.array(nd.scale or [1, 1, 1], dtype=np.float64), (F, 1))
    animated = False
    for ch in anim.channels:
        if ch.target.node != node or ch.target.path not in ("translation", "rotation", "scale"):
            continue
        sm = anim.samplers[ch.sampler]
        key_t = _accessor(gltf, blob, sm.input, path)[:, 0]
        vals = _accessor(gltf, blob, sm.output, path)
        if sm.interpolation == "CUBICSPLINE":
            vals = vals[1::3]                      # (in-tangent, value, out-tangent) per key: the values
        if len(vals) != len(key_t):
            raise ClipError(f"{path}: node {node} {ch.target.path}: {len(key_t)} key times, {len(vals)} values")
        sampled = _sample(key_t, vals, times, sm.interpolation == "STEP", ch.target.path == "rotation")
        {"translation": t, "rotation": q, "scale": s}[ch.target.path][:] = sampled
        animated = True
    if not animated and nd.matrix is not None and len(nd.matrix) == 16:
        return np.broadcast_to(_static_matrix(nd), (F, 4, 4)).copy()
    return _trs(t, q, s)


def _sample(key_t: np.ndarray, vals: np.ndarray, times: np.ndarray, step: bool, quat: bool) -> np.ndarray:
    """Values at ``times``: step or linear (normalised lerp for quaternions, sign-aligned), clamped at the ends."""
    i = np.clip(np.searchsorted(key_t, times, side="right") - 1, 0, len(key_t) - 1)
    if step or len(key_t) == 1:
        return vals[i]
    j = np.minimum(i + 1, len(key_t) - 1)
    span = np.where(j > i, key_t[j] - key_t[i], 1.0)
    w = np.clip((times - key_t[i]) / span, 0.0, 1.0)[:, None]
    a, b = vals[i], vals[j]
    if quat:
        b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
        out = a * (1 - w) + b * w
        return out / np.linalg.norm(out, axis=-1, keepdims=True)
    return a * (1 - w) + b * w


def _world(nodes: list[int], parent_node: dict[int, int], local: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for n in nodes:                                      # parents first
        p = parent_node.get(n)
        out[n] = local[n] if p is None else out[p] @ local[n]
    return out


def _node_path(gltf, n: int, parent_node: dict[int, int]) -> str:
    parts = []
    while n is not None:
        parts.append(gltf.nodes[n].name or f"node{n}")
        n = parent_node.get(n)
    return "/".join(reversed(parts))
