"""glTF 2.0 binary (.glb) export with pygltflib: one skinned mesh with UVs, normals, named morph targets, a skin
with inverse bind matrices, one node per joint, animation channels (joint rotations, root translations, morph
weights) and a PBR material with the albedo texture embedded. glTF is Y-up in metres by specification, so the
scene must be prepared with ExportOptions(up="y", units="m").

Vertices are split where a mesh vertex has several UVs (glTF has one index per vertex); `split_vertices` gives the
glTF vertex -> rig vertex map.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from assets.export.common import ExportError, ExportScene, check_output_path, quat_xyzw, staged_output

log = logging.getLogger(__name__)

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def split_vertices(scene: ExportScene) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(src (V', ) rig vertex of each glTF vertex, tris (F, 3) into the glTF vertices, uv (V', 2) or None)."""
    if scene.uvs is None:
        return np.arange(len(scene.vertices)), scene.faces.astype(np.int64), None
    pairs = np.stack([scene.faces.reshape(-1), scene.face_uvs.reshape(-1)], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return uniq[:, 0], inverse.reshape(-1, 3), scene.uvs[uniq[:, 1]]


class _Bin:
    """The GLB binary chunk: bufferViews and accessors appended as the arrays come."""

    def __init__(self, gltf):
        self.gltf = gltf
        self.data = bytearray()

    def view(self, raw: bytes, target: int | None = None) -> int:
        import pygltflib as g

        self.data += b"\0" * (-len(self.data) % 4)
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw),
                                                  target=target))
        self.data += raw
        return len(self.gltf.bufferViews) - 1

    def accessor(self, arr: np.ndarray, kind: str, target: int | None = None, minmax: bool = False,
                 normalized: bool = False) -> int:
        import pygltflib as g

        arr = np.ascontiguousarray(arr)
        ctype = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint16): _USHORT, np.dtype(np.uint32): _UINT}[arr.dtype]
        count = arr.shape[0]
        flat = arr.reshape(count, -1)
        acc = g.Accessor(bufferView=self.view(arr.tobytes(), target), componentType=ctype, count=count, type=kind,
                         normalized=normalized or None)
        if minmax:
            acc.min = flat.min(0).astype(float).tolist()
            acc.max = flat.max(0).astype(float).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, arr: np.ndarray) -> int:
        """A float VEC3 accessor of (N, 3) ``arr`` stored sparsely (only rows that are not zero; glTF 2.0
        sparse accessor without a bufferView: the rest reads as zero). Morph targets move few vertices."""
        import pygltflib as g

        arr = np.ascontiguousarray(arr, dtype=np.float32)
        rows = np.flatnonzero(np.abs(arr).max(1) > 0).astype(np.uint32)
        if not len(rows):
            rows = np.zeros(1, np.uint32)
        sparse = g.Sparse(count=int(len(rows)),
                          indices=g.AccessorSparseIndices(bufferView=self.view(rows.tobytes()), componentType=_UINT),
                          values=g.AccessorSparseValues(bufferView=self.view(arr[rows].tobytes())))
        acc = g.Accessor(componentType=_FLOAT, count=len(arr), type="VEC3", sparse=sparse,
                         min=arr.min(0).astype(float).tolist(), max=arr.max(0).astype(float).tolist())
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def glb_bytes(gltf) -> bytes:
    """``gltf`` (a pygltflib.GLTF2 with its binary blob set) as the bytes of a .glb file. An accessor with no
    bufferView (a sparse one whose other elements read as zero) loses the byteOffset 0 that pygltflib gives every
    accessor by default, on creation and on load: glTF 2.0 forbids byteOffset there, and the Khronos validator
    rejects the file (ACCESSOR: UNSATISFIED_DEPENDENCY)."""
    for acc in gltf.accessors or []:
        if acc.bufferView is None:
            acc.byteOffset = None
    return b"".join(gltf.save_to_bytes())


def export_glb(scene: ExportScene, out: str | Path) -> Path:
    """Write ``scene`` as a binary glTF to ``out`` (atomic). Returns the path."""
    import pygltflib as g

    out = check_output_path(out, (".glb",))
    if scene.options.up != "y" or scene.options.units != "m":
        raise ExportError(f"{out}: glTF 2.0 is Y-up in metres by specification; got up={scene.options.up!r}, "
                          f"units={scene.options.units!r}")
    gltf = g.GLTF2(scene=0, scenes=[g.Scene(nodes=[])], nodes=[], meshes=[], accessors=[], bufferViews=[],
                   buffers=[], skins=[], animations=[], materials=[], textures=[], images=[], samplers=[])
    gltf.asset = g.Asset(version="2.0", generator=f"Doppel {scene.provenance.get('doppel_version', '')}".strip(),
                         extras={"doppel": scene.provenance})
    b = _Bin(gltf)
    n_targets = _add_mesh(gltf, b, scene)
    roots = _add_skeleton(gltf, b, scene)
    if scene.num_frames:
        _add_animation(gltf, b, scene, roots, n_targets)
    for key in ("images", "samplers", "textures", "materials", "animations"):
        if not getattr(gltf, key):
            setattr(gltf, key, [])
    b.data += b"\0" * (-len(b.data) % 4)
    gltf.buffers.append(g.Buffer(byteLength=len(b.data)))
    gltf.set_binary_blob(bytes(b.data))
    glb = glb_bytes(gltf)
    with staged_output(out) as staged:
        staged.write_bytes(glb)
    log.info("wrote %s (%d bytes)", out, len(glb))
    return out


def _add_mesh(gltf, b: _Bin, scene: ExportScene) -> int:
    """Mesh 0: positions, normals, UVs (v flipped), skin influences in sets of 4, sparse morph targets and the
    material with the embedded texture. Returns the number of morph targets."""
    import pygltflib as g

    src, tris, uv = split_vertices(scene)
    pos = scene.vertices[src].astype(np.float32)
    attrs = g.Attributes(POSITION=b.accessor(pos, "VEC3", _ARRAY_BUFFER, minmax=True),
                         NORMAL=b.accessor(scene.normals[src].astype(np.float32), "VEC3", _ARRAY_BUFFER))
    if uv is not None:
        attrs.TEXCOORD_0 = b.accessor(np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1).astype(np.float32), "VEC2",
                                      _ARRAY_BUFFER)
    _add_skin_attributes(attrs, b, scene, src)
    targets = [{"POSITION": b.sparse_vec3(d[src])} for d in scene.blendshape_deltas]
    indices = b.accessor(tris.reshape(-1).astype(np.uint32), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    material = _add_material(gltf, b, scene) if scene.texture is not None else None
    prim = g.Primitive(attributes=attrs, indices=indices, material=material, mode=4,
                       targets=[g.Attributes(**t) for t in targets] or None)
    gltf.meshes.append(g.Mesh(name=scene.name, primitives=[prim], weights=[0.0] * len(targets) if targets else None,
                              extras={"targetNames": scene.blendshape_names} if targets else None))
    return len(targets)


def _add_skin_attributes(attrs, b: _Bin, scene: ExportScene, src: np.ndarray) -> None:
    """JOINTS_n / WEIGHTS_n: the influences of the split vertices ``src`` in sets of 4, zero-padded, normalised."""
    J = len(scene.joint_names)
    idx, w = scene.skin_indices[src], scene.skin_weights[src]
    K = idx.shape[1]
    sets = -(-K // 4)
    idx = np.concatenate([idx, np.zeros((len(src), sets * 4 - K), np.int64)], 1)
    w = np.concatenate([w, np.zeros((len(src), sets * 4 - K))], 1)
    w = w / w.sum(1, keepdims=True)
    jtype = np.uint16 if J < 65536 else np.uint32
    for s in range(sets):
        setattr(attrs, f"JOINTS_{s}", b.accessor(idx[:, 4 * s:4 * s + 4].astype(jtype), "VEC4", _ARRAY_BUFFER))
        setattr(attrs, f"WEIGHTS_{s}", b.accessor(w[:, 4 * s:4 * s + 4].astype(np.float32), "VEC4", _ARRAY_BUFFER))


def _add_material(gltf, b: _Bin, scene: ExportScene) -> int:
    """The texture embedded in the buffer and a PBR material using it; returns the material index (0)."""
    import pygltflib as g

    gltf.images.append(g.Image(bufferView=b.view(scene.texture.read_bytes()), mimeType=_mime(scene.texture),
                               name=scene.texture.stem))
    gltf.samplers.append(g.Sampler(magFilter=9729, minFilter=9987, wrapS=10497, wrapT=10497))
    gltf.textures.append(g.Texture(source=0, sampler=0))
    gltf.materials.append(g.Material(
        name=f"{scene.name}_skin", doubleSided=False,
        pbrMetallicRoughness=g.PbrMetallicRoughness(baseColorTexture=g.TextureInfo(index=0), metallicFactor=0.0,
                                                    roughnessFactor=0.6)))
    return 0


def _add_skeleton(gltf, b: _Bin, scene: ExportScene) -> list[int]:
    """Node j = joint j with its local rest TRS, the mesh node J, the skin (inverse bind matrices; its skeleton the
    root joint, or node J + 1 holding the roots when there are several); returns the root joints."""
    import pygltflib as g

    J = len(scene.joint_names)
    L = scene.local_bind()
    q_rest = quat_xyzw(L[:, :3, :3])
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(scene.parents):
        if p >= 0:
            children[p].append(j)
    for j in range(J):
        gltf.nodes.append(g.Node(name=scene.joint_names[j], translation=L[j, :3, 3].tolist(),
                                 rotation=q_rest[j].tolist(), children=children[j] or None))
    roots = [j for j in range(J) if scene.parents[j] < 0]
    inv_bind = np.linalg.inv(scene.bind).transpose(0, 2, 1).astype(np.float32)   # column-major
    gltf.nodes.append(g.Node(name=scene.name, mesh=0, skin=0))
    skeleton = roots[0]
    if len(roots) > 1:
        # glTF: a skin's joints MUST have a common root (the Khronos validator: SKIN_NO_COMMON_ROOT), so a rig of
        # several roots (a prop beside the hips) hangs them under one node at the origin that is not a joint.
        gltf.nodes.append(g.Node(name=f"{scene.name}_skeleton_root", children=roots))
        skeleton = J + 1
    gltf.skins.append(g.Skin(name=f"{scene.name}_skeleton", joints=list(range(J)),
                             inverseBindMatrices=b.accessor(inv_bind.reshape(J, 16), "MAT4"), skeleton=skeleton))
    gltf.scenes[0].nodes = [skeleton, J]
    return roots


def _add_animation(gltf, b: _Bin, scene: ExportScene, roots: list[int], n_targets: int) -> None:
    """One animation, keys at frame / fps seconds: the joints' rotations, the roots' translations, the morph
    weights (on the mesh node). A joint the take never moves from its rest (fingers, toes and eyes of a body take)
    has no rotation channel, and all-zero morph weights none: a node without a channel keeps its own rotation, the
    rest (glTF 2.0 section 3.11), and the mesh its default weights, 0."""
    import pygltflib as g

    T, J = scene.num_frames, len(scene.joint_names)
    q, trans = scene.local_quaternions()                              # (T, J, 4), (T, J, 3)
    times = b.accessor((np.arange(T) / scene.fps).astype(np.float32), "SCALAR", minmax=True)
    q_rest = quat_xyzw(scene.local_bind()[:, :3, :3])
    samplers, channels = [], []

    def channel(node: int, path: str, values: np.ndarray, kind: str) -> None:
        samplers.append(g.AnimationSampler(input=times, output=b.accessor(values.astype(np.float32), kind),
                                           interpolation="LINEAR"))
        channels.append(g.AnimationChannel(sampler=len(samplers) - 1,
                                           target=g.AnimationChannelTarget(node=node, path=path)))

    for j in range(J):
        if not at_rest(q[:, j], q_rest[j]):
            channel(j, "rotation", q[:, j], "VEC4")
    for j in roots:
        channel(j, "translation", trans[:, j], "VEC3")
    if n_targets and scene.blendshape_weights is not None and np.any(scene.blendshape_weights != 0):
        channel(J, "weights", scene.blendshape_weights.reshape(-1), "SCALAR")
    gltf.animations.append(g.Animation(name=f"{scene.name}_anim", samplers=samplers, channels=channels,
                                       extras={"fps": scene.fps}))


def at_rest(track: np.ndarray, rest: np.ndarray, tol: float = 1e-7) -> bool:
    """Whether a joint's quaternions (T, 4) are its rest quaternion (4,) at every frame, either sign, within
    ``tol`` per component (below float32's resolution of a unit quaternion)."""
    d = np.minimum(np.abs(track - rest).max(axis=1), np.abs(track + rest).max(axis=1))
    return bool((d <= tol).all())


def read_glb_json(path: str | Path) -> dict:
    """The JSON chunk of a .glb file (for checks and tests); its binary chunk is not read."""
    with open(path, "rb") as f:
        head = f.read(20)
        if head[:4] != b"glTF":
            raise ExportError(f"{path}: not a binary glTF file")
        return json.loads(f.read(int.from_bytes(head[12:16], "little")))


def _mime(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".png":
        return "image/png"
    if ext in (".jpg", ".jpeg"):
        return "image/jpeg"
    raise ExportError(f"{path}: glTF textures must be PNG or JPEG")
