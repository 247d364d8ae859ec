"""The built-in virtual actor: a seeded Anny body, posed and expressive, in Doppel's frame, with a
procedural albedo texture, so the whole pipeline can run (and be tested) without a real person.

Same seed, same actor, bit for bit: every random choice comes from ``numpy.random.default_rng(seed)``
and the body is evaluated in float64 on the CPU before it is rounded to float32.

The body comes from `reconstruction.body_models.AnnyModel` (the one place that converts Anny's Z-up frame to
Doppel's and Anny's pose parameters to Doppel's convention). The seeded pose is written as rotations in the
world axes of Doppel's frame on top of Anny's reference pose (the arms-down stance Anny starts from);
`AnnyModel.reference_pose` turns it into Doppel's local rotations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

# Phenotype ranges the seed draws from (anny's phenotype values live in [0, 1]); kept away from the
# extremes so the actor stays an ordinary adult.
PHENOTYPE_RANGES = {
    "gender": (0.0, 1.0),
    "age": (0.45, 0.75),
    "muscle": (0.35, 0.65),
    "weight": (0.35, 0.65),
    "height": (0.35, 0.75),
    "proportions": (0.4, 0.6),
}
# A relaxed A-pose: (bone, rotation axis in Doppel's world axes (+Y up, facing +Z), base angle in radians,
# jitter), applied on top of Anny's reference pose (see AnnyModel.reference_pose).
_POSE_TEMPLATE = (
    ("upperarm01.L", (0.0, 0.0, -1.0), 0.55, 0.08),
    ("upperarm01.R", (0.0, 0.0, 1.0), 0.55, 0.08),
    ("lowerarm01.L", (0.0, 1.0, 0.0), 0.1, 0.05),
    ("lowerarm01.R", (0.0, -1.0, 0.0), 0.1, 0.05),
    ("neck02", (0.0, 1.0, 0.0), 0.0, 0.12),
    ("head", (1.0, 0.0, 0.0), 0.0, 0.06),
)
# Facial expression: a light smile and open eyes, with seeded variation (ARKit names, weights in [0, 1]).
_EXPRESSION_TEMPLATE = (
    ("mouthSmileLeft", 0.35, 0.15),
    ("mouthSmileRight", 0.35, 0.15),
    ("browInnerUp", 0.1, 0.1),
    ("jawOpen", 0.05, 0.05),
)


@dataclass(frozen=True)
class VirtualActor:
    """A textured, posed body in Doppel's frame (metres, +Y up, facing +Z, feet on y = 0)."""

    seed: int
    phenotype: dict[str, float]           # anny phenotype name -> value in [0, 1]
    expression: dict[str, float]          # ARKit blendshape name -> weight in [0, 1]
    pose: dict[str, list[float]]          # bone -> axis-angle (radians, Doppel world axes, on Anny's reference pose)
    vertices: np.ndarray                  # (V, 3) float32, posed, metres
    rest_vertices: np.ndarray             # (V, 3) float32, rest pose (same neutral face), metres
    faces: np.ndarray                     # (F, 3) int64 triangles, counter-clockwise seen from outside
    uvs: np.ndarray                       # (T, 2) float32 texture coordinates, v up
    face_uvs: np.ndarray                  # (F, 3) int64 indices into uvs
    joint_names: list[str]
    parents: np.ndarray                   # (J,) int64, -1 = root, topological order
    joints: np.ndarray                    # (J, 3) float32, posed joint (bone head) positions
    face_regions: np.ndarray              # (F,) int8 region id per face, see albedo.REGIONS
    texture: np.ndarray = field(repr=False)  # (H, W, 3) float32 albedo, sRGB in [0, 1]

    @property
    def height(self) -> float:
        """Standing height in metres (rest pose)."""
        return float(self.rest_vertices[:, 1].max() - self.rest_vertices[:, 1].min())

    def statistics(self) -> dict:
        """Counts and sizes a person can check at a glance."""
        lo, hi = self.vertices.min(0), self.vertices.max(0)
        return {
            "seed": self.seed,
            "vertices": int(len(self.vertices)),
            "triangles": int(len(self.faces)),
            "uv_vertices": int(len(self.uvs)),
            "joints": len(self.joint_names),
            "height_m": round(self.height, 4),
            "bbox_min_m": [round(float(x), 4) for x in lo],
            "bbox_max_m": [round(float(x), 4) for x in hi],
            "texture_size": list(self.texture.shape[:2]),
            "phenotype": self.phenotype,
            "expression": self.expression,
        }


@lru_cache(maxsize=1)
def body_model():
    """The virtual actor's body model: Anny (default rig, all 52 facial actions) in float64 on the CPU, built
    once per process (the first use on a machine builds anny's ~1 GB cache in ~/.cache/anny, about a minute
    and a half on 2 cores)."""
    import torch

    from reconstruction.body_models.anny_model import AnnyModel

    return AnnyModel(dtype=torch.float64)


def _anny_model():
    """The `anny.Anny` behind `body_model()` (for anny's own tools, e.g. its COCO keypoint regressor)."""
    return body_model().model


def sample_parameters(seed: int) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """The seeded phenotype, expression and pose of the virtual actor (plain Python values)."""
    rng = np.random.default_rng(seed)
    phenotype = {k: round(float(rng.uniform(lo, hi)), 6) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
    expression = {k: round(float(np.clip(base + rng.uniform(-j, j), 0.0, 1.0)), 6)
                  for k, base, j in _EXPRESSION_TEMPLATE}
    pose = {}
    for bone, axis, base, jitter in _POSE_TEMPLATE:
        angle = base + rng.uniform(-jitter, jitter)
        pose[bone] = [round(float(a * angle), 6) for a in axis]
    return phenotype, expression, pose


def build_virtual_actor(seed: int = 0, texture_size: int = 1024,
                        pose: dict[str, list[float]] | None = None) -> VirtualActor:
    """Build the virtual actor for ``seed``. texture_size: albedo width = height in texels (>= 64). pose: bone ->
    axis-angle (radians, Doppel world axes on Anny's reference pose, as in ``sample_parameters``) replacing the
    seeded pose (e.g. the frames of a motion); the phenotype, expression and texture stay the seed's."""
    if texture_size < 64:
        raise ValueError(f"texture_size must be >= 64 texels, got {texture_size}")
    from doppel import albedo

    phenotype, expression, seeded_pose = sample_parameters(seed)
    pose = seeded_pose if pose is None else {k: [float(x) for x in v] for k, v in pose.items()}
    model = body_model()
    verts, rest_verts, joints = _posed_and_rest(model, phenotype, expression, pose)
    # Feet on the floor: the lowest rest-pose point at y = 0 (the same shift for posed and rest).
    shift = np.array([0.0, -rest_verts[:, 1].min(), 0.0])
    verts, rest_verts, joints = verts + shift, rest_verts + shift, joints + shift

    faces = model.faces
    uvs, face_uvs = model.uvs
    regions = albedo.face_regions(uvs, face_uvs)
    texture = albedo.paint_albedo(rest_verts, faces, uvs, face_uvs, regions, seed=seed, size=texture_size)
    return VirtualActor(
        seed=seed, phenotype=phenotype, expression=expression, pose=pose,
        vertices=verts.astype(np.float32), rest_vertices=rest_verts.astype(np.float32),
        faces=faces, uvs=uvs, face_uvs=face_uvs, joint_names=list(model.skeleton.joint_names),
        parents=model.skeleton.parents.copy(), joints=joints.astype(np.float32), face_regions=regions,
        texture=texture,
    )


def _posed_and_rest(model, phenotype: dict[str, float], expression: dict[str, float],
                    pose: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(posed vertices (V, 3), rest vertices (V, 3): Anny's reference pose with a neutral face, posed joints
    (J, 3)), float64 metres in Doppel's frame, before the floor shift."""
    import torch

    from reconstruction.body_models.base import BodyParams

    shape = torch.from_numpy(model.shape_vector(phenotype))[None]
    posed_R, t = model.reference_pose(phenotype, pose)
    rest_R, _ = model.reference_pose(phenotype, None)
    with torch.no_grad():
        posed = model(BodyParams(shape=shape, pose=torch.from_numpy(posed_R)[None],
                                 root_translation=torch.from_numpy(t)[None],
                                 expression=torch.from_numpy(model.expression_vector(expression))[None]))
        rest = model(BodyParams(shape=shape, pose=torch.from_numpy(rest_R)[None],
                                root_translation=torch.from_numpy(t)[None]))
    return posed.vertices[0].numpy(), rest.vertices[0].numpy(), posed.joints[0].numpy()
