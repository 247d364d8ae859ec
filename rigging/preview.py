"""Preview pictures of a rig: the mesh posed in a few poses with its skeleton drawn over it.

A small orthographic painter's-algorithm renderer (Pillow polygons, far faces first, back faces culled,
Lambert shading) so a person can check a rig at a glance without a GPU or the neural renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rigging.rig import Rig

# Limb joints across Anny's, Mixamo's, CMU's and SMPL-X's skeletons: base names (side and namespace
# removed) in order of preference.
_UPPER_ARM = ("upperarm01", "upperarm", "arm", "shoulder")
_LOWER_ARM = ("lowerarm01", "lowerarm", "forearm", "elbow")
_UPPER_LEG = ("upperleg01", "upperleg", "upleg", "thigh", "hip")
_LOWER_LEG = ("lowerleg01", "lowerleg", "leg", "calf", "shin", "knee")


@dataclass(frozen=True)
class PreviewPose:
    title: str
    rotations: np.ndarray            # (J, 3, 3) local rotations (rig convention)
    expression: np.ndarray | None    # (N,) blendshape weights or None
    yaw_deg: float = 0.0             # camera turn about +Y (0 = looking at the actor's front)


def _side_and_base(name: str) -> tuple[str | None, str]:
    low = name.lower().split(":")[-1]
    for suffix, side in ((".l", "L"), (".r", "R"), ("_l", "L"), ("_r", "R")):
        if low.endswith(suffix):
            return side, low[: -len(suffix)].strip("._")
    for prefix, side in (("left", "L"), ("right", "R"), ("l_", "L"), ("r_", "R")):
        if low.startswith(prefix):
            return side, low[len(prefix):].strip("._")
    return None, low


def _find(rig: Rig, bases: tuple[str, ...], left: bool) -> int | None:
    table = {}
    for j, n in enumerate(rig.joint_names):
        side, base = _side_and_base(n)
        if side == ("L" if left else "R"):
            table.setdefault(base, j)
    for base in bases:
        if base in table:
            return table[base]
    return None


def preview_poses(rig: Rig) -> list[PreviewPose]:
    """Bind pose (front, side) and an action pose (arm raised, stride, smile where the rig has one)."""
    import roma

    J = rig.num_joints
    eye = np.tile(np.eye(3), (J, 1, 1))
    world = np.tile(np.eye(3), (J, 1, 1))
    for frag, left, rotvec in (
        (_UPPER_ARM, True, (0, 0, 1.0)), (_LOWER_ARM, True, (0, 0, 0.6)),
        (_UPPER_ARM, False, (0, 0, 0.35)), (_LOWER_ARM, False, (0, -0.9, 0)),
        (_UPPER_LEG, True, (-0.5, 0, 0)), (_LOWER_LEG, True, (0.7, 0, 0)),
        (_UPPER_LEG, False, (0.35, 0, 0)),
    ):
        j = _find(rig, frag, left)
        if j is not None:
            world[j] = roma.rotvec_to_rotmat(torch.tensor(rotvec, dtype=torch.float64)).numpy()
    action = rig.local_from_world_aligned(torch.as_tensor(world)[None])[0].numpy()
    expr = None
    if rig.blendshape_names:
        wts = {n: 0.8 for n in rig.blendshape_names if n.startswith("mouthSmile")}
        if not wts:
            wts = {rig.blendshape_names[0]: 1.0}
        expr = rig.blendshape_vector(wts)
    return [PreviewPose("bind pose", eye, None, 0.0), PreviewPose("bind pose, side", eye, None, 90.0),
            PreviewPose("action pose", action, expr, 0.0), PreviewPose("action pose, 3/4", action, expr, 35.0)]


def render_preview(rig: Rig, poses: list[PreviewPose] | None = None, size: int = 384,
                   method: str = "lbs", region: np.ndarray | None = None) -> np.ndarray:
    """(size, size * len(poses), 3) float32 sRGB image in [0, 1]: one panel per pose, skeleton on top.
    region: (K,) triangle indices to draw alone, framed on their own extent, without the skeleton (a close-up of
    the face); None: the whole mesh and its skeleton."""
    from PIL import Image, ImageDraw

    poses = poses if poses is not None else preview_poses(rig)
    faces = rig.faces if region is None else rig.faces[region]
    R = torch.as_tensor(np.stack([p.rotations for p in poses]), dtype=torch.float64)
    N = len(rig.blendshape_names)
    w = np.stack([p.expression if p.expression is not None else np.zeros(N) for p in poses]) if N else None
    with torch.no_grad():
        verts = rig.pose(R, None, w, method=method).numpy()
        joints = rig.forward_kinematics(R, None, w)[..., :3, 3].numpy()
    panels = []
    for p, v, jts in zip(poses, verts, joints, strict=True):
        a = np.deg2rad(p.yaw_deg)
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        v, jts = v @ rot.T, jts @ rot.T
        shown = v[np.unique(faces)]
        lo, hi = shown.min(0), shown.max(0)
        centre = (lo + hi) / 2
        scale = 0.9 * size / max(hi[0] - lo[0], hi[1] - lo[1], 1e-6)

        def to_px(x, centre=centre, scale=scale):
            return np.stack([(x[:, 0] - centre[0]) * scale + size / 2, -(x[:, 1] - centre[1]) * scale + size / 2], 1)

        img = Image.new("RGB", (size, size), (245, 245, 242))
        draw = ImageDraw.Draw(img)
        tri = v[faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        front = n[:, 2] > 0
        order = np.argsort(tri[:, :, 2].mean(1))
        shade = 0.25 + 0.75 * np.clip(n @ np.array([0.3, 0.4, 0.87]), 0, 1)
        px = to_px(v)
        for f in order[front[order]]:
            c = int(200 * shade[f])
            draw.polygon([tuple(px[i]) for i in faces[f]], fill=(c, int(c * 0.93), int(c * 0.88)))
        if region is None:
            _draw_skeleton(draw, to_px(jts), rig.parents)
        draw.text((6, 6), p.title, fill=(0, 0, 0))
        panels.append(np.asarray(img, dtype=np.float32) / 255.0)
    return np.concatenate(panels, axis=1)


def _draw_skeleton(draw, jp: np.ndarray, parents) -> None:
    """Bones (red) and joints (blue) at pixel positions jp (J, 2)."""
    for j, par in enumerate(parents):
        if par >= 0:
            draw.line([tuple(jp[par]), tuple(jp[j])], fill=(220, 40, 40), width=2)
    for x, y in jp:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(30, 60, 200))
