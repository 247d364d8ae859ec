"""A small glTF 2.0 evaluator in numpy: node transforms, animation channels (translation, rotation, scale; LINEAR,
STEP and CUBICSPLINE keys) and linear-blend skinning, enough to know where an animated model goes over a clip.

It reads any binary glTF without compression extensions, not only Doppel's own exports, so that the review site
can frame what a vendor handed over too. Morph targets are ignored (they move vertices by millimetres to
centimetres, not the metres a travelling root covers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORM_MAX = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}


class GltfReadError(ValueError):
    """A .glb file that this evaluator cannot read (not binary glTF, compressed, broken accessors)."""


@dataclass(frozen=True)
class SkinnedPrimitive:
    positions: np.ndarray        # (V, 3) float64, mesh space, metres
    joints: np.ndarray | None    # (V, K) int64 indices into the skin's joint list, or None (rigid)
    weights: np.ndarray | None   # (V, K) float64, rows sum to 1
    node: int                    # the node that carries the mesh
    skin: int | None             # index into GlbScene.skins


@dataclass
class GlbScene:
    """What `evaluate` needs from a .glb: the node tree, rest TRS, skins, primitives and the first animation."""

    parents: np.ndarray                  # (N,) int64, -1 for scene roots
    order: list[int]                     # nodes, parents before children
    rest_t: np.ndarray                   # (N, 3)
    rest_r: np.ndarray                   # (N, 4) quaternions (x, y, z, w) as glTF stores them
    rest_s: np.ndarray                   # (N, 3)
    static: dict[int, np.ndarray]        # node -> 4x4 matrix, for nodes given by `matrix` (not animatable)
    skins: list[tuple[list[int], np.ndarray]]   # (joint nodes, inverse bind matrices (J, 4, 4))
    primitives: list[SkinnedPrimitive]
    channels: list[tuple[int, str, np.ndarray, np.ndarray, str]]  # (node, path, times (K,), values (K, C), interp)
    duration: float                      # seconds, 0 without animation


def _accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    """Accessor ``index`` as a float64 array (count, width) (normalized integers scaled to [0, 1] / [-1, 1])."""
    acc = gltf.accessors[index]
    dtype = _COMPONENTS.get(acc.componentType)
    width = _WIDTH.get(acc.type)
    if dtype is None or width is None:
        raise GltfReadError(f"accessor {index}: unsupported component type {acc.componentType} / {acc.type}")
    item = np.dtype(dtype).itemsize
    out = np.zeros((acc.count, width), np.float64)
    if acc.bufferView is not None:
        bv = gltf.bufferViews[acc.bufferView]
        start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
        stride = bv.byteStride or item * width
        end = start + stride * (acc.count - 1) + item * width
        if end > len(blob):
            raise GltfReadError(f"accessor {index}: reads past the end of the binary chunk")
        raw = np.frombuffer(blob, np.uint8, count=end - start, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (acc.count, item * width), (stride, 1))
        out = np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width).astype(np.float64)
    if acc.sparse is not None:
        sp = acc.sparse
        ibv, vbv = gltf.bufferViews[sp.indices.bufferView], gltf.bufferViews[sp.values.bufferView]
        idt = _COMPONENTS[sp.indices.componentType]
        idx = np.frombuffer(blob, idt, count=sp.count,
                            offset=(ibv.byteOffset or 0) + (sp.indices.byteOffset or 0)).astype(np.int64)
        vals = np.frombuffer(blob, dtype, count=sp.count * width,
                             offset=(vbv.byteOffset or 0) + (sp.values.byteOffset or 0)).reshape(sp.count, width)
        out[idx] = vals
    if acc.normalized and dtype in _NORM_MAX:
        out = np.maximum(out / _NORM_MAX[dtype], -1.0)
    return out


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w), normalised here -> (..., 3, 3) rotation matrices."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True).clip(1e-12)
    x, y, z, w = np.moveaxis(q, -1, 0)
    m = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                  2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                  2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)
    return m.reshape(q.shape[:-1] + (3, 3))


def _influence_sets(attributes) -> list[tuple[int, int]]:
    """(JOINTS_k, WEIGHTS_k) accessor pairs, k = 0, 1, ... while the primitive has them. pygltflib declares only
    JOINTS_0 / WEIGHTS_0: a file with four influences a vertex has no JOINTS_1 attribute at all (another tool's
    export), one with twelve (Doppel's) has JOINTS_0 to JOINTS_2."""
    sets = []
    while True:
        joints, weights = (getattr(attributes, f"{kind}_{len(sets)}", None) for kind in ("JOINTS", "WEIGHTS"))
        if joints is None or weights is None:
            return sets
        sets.append((joints, weights))


def load_glb(path: str | Path) -> GlbScene:
    """Read ``path`` (.glb) into a GlbScene. Raises GltfReadError naming the file when it cannot."""
    import pygltflib

    path = Path(path)
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error) as e:
        raise GltfReadError(f"{path}: not a readable binary glTF ({type(e).__name__}: {e})") from e
    if gltf is None:
        raise GltfReadError(f"{path}: not a readable binary glTF")
    blob = gltf.binary_blob() or b""
    compressed = {"KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_texture_basisu"}
    used = set(gltf.extensionsUsed or []) & compressed
    if used:
        raise GltfReadError(f"{path}: uses {', '.join(sorted(used))}, whose decoders come from a CDN; "
                            "export without compression")
    try:
        return _scene(gltf, blob)
    except (IndexError, KeyError, TypeError) as e:
        raise GltfReadError(f"{path}: malformed glTF ({type(e).__name__}: {e})") from e


def _scene(gltf, blob: bytes) -> GlbScene:
    n = len(gltf.nodes)
    parents = np.full(n, -1, np.int64)
    for i, node in enumerate(gltf.nodes):
        for c in node.children or []:
            parents[c] = i
    order, seen = [], set()

    def visit(i: int) -> None:
        if i in seen:
            return
        if parents[i] >= 0:
            visit(int(parents[i]))
        seen.add(i)
        order.append(i)

    for i in range(n):
        visit(i)
    rest_t, rest_r, rest_s = np.zeros((n, 3)), np.tile([0.0, 0, 0, 1], (n, 1)), np.ones((n, 3))
    static = {}
    for i, node in enumerate(gltf.nodes):
        if node.matrix is not None and not np.allclose(node.matrix, np.eye(4).ravel()):
            static[i] = np.asarray(node.matrix, np.float64).reshape(4, 4).T   # column-major in glTF
        rest_t[i] = node.translation or rest_t[i]
        rest_r[i] = node.rotation or rest_r[i]
        rest_s[i] = node.scale or rest_s[i]
    skins = [(list(s.joints), _accessor(gltf, blob, s.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
              if s.inverseBindMatrices is not None else np.tile(np.eye(4), (len(s.joints), 1, 1)))
             for s in gltf.skins or []]
    prims = []
    for i, node in enumerate(gltf.nodes):
        if node.mesh is None:
            continue
        for p in gltf.meshes[node.mesh].primitives:
            a = p.attributes
            if a.POSITION is None:
                continue
            pos = _accessor(gltf, blob, a.POSITION)
            joints = weights = None
            if node.skin is not None and a.JOINTS_0 is not None and a.WEIGHTS_0 is not None:
                sets = _influence_sets(a)
                joints = np.concatenate([_accessor(gltf, blob, j) for j, _ in sets], 1).astype(np.int64)
                weights = np.concatenate([_accessor(gltf, blob, w) for _, w in sets], 1)
                weights = weights / weights.sum(1, keepdims=True).clip(1e-12)
            prims.append(SkinnedPrimitive(pos, joints, weights, i, node.skin if joints is not None else None))
    channels, duration = [], 0.0
    if gltf.animations:
        anim = gltf.animations[0]
        for ch in anim.channels:
            if ch.target.node is None or ch.target.path not in ("translation", "rotation", "scale"):
                continue
            s = anim.samplers[ch.sampler]
            times = _accessor(gltf, blob, s.input)[:, 0]
            vals = _accessor(gltf, blob, s.output)
            interp = s.interpolation or "LINEAR"
            if interp == "CUBICSPLINE":          # (in-tangent, value, out-tangent) per key: keep the values
                vals = vals.reshape(len(times), 3, -1)[:, 1]
            channels.append((ch.target.node, ch.target.path, times, vals, interp))
            duration = max(duration, float(times[-1]) if len(times) else 0.0)
    return GlbScene(parents, order, rest_t, rest_r, rest_s, static, skins, prims, channels, duration)


def _sample(times: np.ndarray, vals: np.ndarray, t: float, interp: str, rotation: bool) -> np.ndarray:
    if t <= times[0] or len(times) == 1:
        return vals[0]
    if t >= times[-1]:
        return vals[-1]
    k = int(np.searchsorted(times, t, side="right")) - 1
    if interp == "STEP":
        return vals[k]
    a = (t - times[k]) / max(times[k + 1] - times[k], 1e-12)
    v0, v1 = vals[k], vals[k + 1]
    if rotation and np.dot(v0, v1) < 0:
        v1 = -v1
    return (1 - a) * v0 + a * v1          # nlerp for rotations: normalised in _quat_to_mat


def node_world(scene: GlbScene, t: float) -> np.ndarray:
    """World 4x4 matrices (N, 4, 4) of every node at time ``t`` seconds of the first animation."""
    tr, rot, sc = scene.rest_t.copy(), scene.rest_r.copy(), scene.rest_s.copy()
    for node, path, times, vals, interp in scene.channels:
        v = _sample(times, vals, t, interp, path == "rotation")
        {"translation": tr, "rotation": rot, "scale": sc}[path][node] = v
    local = np.zeros((len(tr), 4, 4))
    local[:, :3, :3] = _quat_to_mat(rot) * sc[:, None, :]
    local[:, :3, 3] = tr
    local[:, 3, 3] = 1.0
    for i, m in scene.static.items():
        local[i] = m
    world = np.empty_like(local)
    for i in scene.order:
        p = scene.parents[i]
        world[i] = local[i] if p < 0 else world[p] @ local[i]
    return world


def posed_points(scene: GlbScene, t: float) -> np.ndarray:
    """All primitives' vertices at time ``t`` (seconds), skinned, in world space: (V_total, 3) metres."""
    world = node_world(scene, t)
    out = []
    for p in scene.primitives:
        homog = np.concatenate([p.positions, np.ones((len(p.positions), 1))], 1)
        if p.skin is None:
            out.append((homog @ world[p.node].T)[:, :3])
            continue
        joints, inv_bind = scene.skins[p.skin]
        mats = world[joints] @ inv_bind                                  # (J, 4, 4)
        blended = np.einsum("vk,vkij->vij", p.weights, mats[p.joints])   # (V, 4, 4)
        out.append(np.einsum("vij,vj->vi", blended, homog)[:, :3])
    return np.concatenate(out) if out else np.zeros((0, 3))
