"""Synthetic humanoid clips for tests, benchmarks and the demo (no data files needed).

:func:`synthetic_walk` builds a walking humanoid (feet planted during stance by an analytic leg IK, arms
swinging) as a :class:`Motion`, in any naming scheme, with a T- or A-pose rest, any rotation order, and
optionally a Z-up world, so retargeting can be checked on clips in other vendors' conventions. The
motion in the world does not depend on the rest pose: only the local rotations change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_retarget.bvh import Motion

# role -> (parent role, offset from the parent in metres for a T-pose, +Y up, facing +Z, left = +X)
_SKELETON: list[tuple[str, str | None, tuple[float, float, float]]] = [
    ("hips", None, (0.0, 0.95, 0.0)),
    ("thigh_l", "hips", (0.09, -0.05, 0.0)), ("shin_l", "thigh_l", (0.0, -0.42, 0.0)),
    ("foot_l", "shin_l", (0.0, -0.42, 0.0)), ("toe_l", "foot_l", (0.0, -0.06, 0.13)),
    ("thigh_r", "hips", (-0.09, -0.05, 0.0)), ("shin_r", "thigh_r", (0.0, -0.42, 0.0)),
    ("foot_r", "shin_r", (0.0, -0.42, 0.0)), ("toe_r", "foot_r", (0.0, -0.06, 0.13)),
    ("spine", "hips", (0.0, 0.1, 0.0)), ("spine1", "spine", (0.0, 0.12, 0.0)), ("chest", "spine1", (0.0, 0.13, 0.0)),
    ("neck", "chest", (0.0, 0.2, 0.0)), ("head", "neck", (0.0, 0.1, 0.02)),
    ("clavicle_l", "chest", (0.03, 0.15, 0.0)), ("upperarm_l", "clavicle_l", (0.15, 0.0, 0.0)),
    ("forearm_l", "upperarm_l", (0.28, 0.0, 0.0)), ("hand_l", "forearm_l", (0.25, 0.0, 0.0)),
    ("thumb1_l", "hand_l", (0.03, 0.0, 0.03)), ("thumb2_l", "thumb1_l", (0.03, 0.0, 0.02)),
    ("index1_l", "hand_l", (0.09, 0.0, 0.02)), ("index2_l", "index1_l", (0.04, 0.0, 0.0)),
    ("clavicle_r", "chest", (-0.03, 0.15, 0.0)), ("upperarm_r", "clavicle_r", (-0.15, 0.0, 0.0)),
    ("forearm_r", "upperarm_r", (-0.28, 0.0, 0.0)), ("hand_r", "forearm_r", (-0.25, 0.0, 0.0)),
    ("thumb1_r", "hand_r", (-0.03, 0.0, 0.03)), ("thumb2_r", "thumb1_r", (-0.03, 0.0, 0.02)),
    ("index1_r", "hand_r", (-0.09, 0.0, 0.02)), ("index2_r", "index1_r", (-0.04, 0.0, 0.0)),
]
_END_SITES = {"toe_l": (0.0, 0.0, 0.05), "toe_r": (0.0, 0.0, 0.05), "head": (0.0, 0.18, 0.0),
              "thumb2_l": (0.02, 0.0, 0.01), "thumb2_r": (-0.02, 0.0, 0.01),
              "index2_l": (0.03, 0.0, 0.0), "index2_r": (-0.03, 0.0, 0.0)}
_ARM = {f"{r}_{s}" for r in ("upperarm", "forearm", "hand", "thumb1", "thumb2", "index1", "index2") for s in "lr"}

# Naming schemes used by tests and benchmarks (role -> joint name). Written from each vendor's docs.
SCHEMES: dict[str, dict[str, str]] = {
    "cmu": {"hips": "Hips", "spine": "LowerBack", "spine1": "Spine", "chest": "Spine1", "neck": "Neck",
            "head": "Head", **{f"{r}_{s}": f"{S}{n}" for s, S in (("l", "Left"), ("r", "Right")) for r, n in (
                ("clavicle", "Shoulder"), ("upperarm", "Arm"), ("forearm", "ForeArm"), ("hand", "Hand"),
                ("thigh", "UpLeg"), ("shin", "Leg"), ("foot", "Foot"), ("toe", "ToeBase"),
                ("thumb1", "HandThumb1"), ("thumb2", "HandThumb2"), ("index1", "HandIndex1"),
                ("index2", "HandIndex2"))}},
}
SCHEMES["mixamo"] = {r: f"mixamorig:{n}" for r, n in SCHEMES["cmu"].items()} | {
    "spine": "mixamorig:Spine", "spine1": "mixamorig:Spine1", "chest": "mixamorig:Spine2"}
SCHEMES["unreal"] = {"hips": "pelvis", "spine": "spine_01", "spine1": "spine_02", "chest": "spine_03",
                     "neck": "neck_01", "head": "head", **{f"{r}_{s}": f"{n}_{s}" for s in "lr" for r, n in (
                         ("clavicle", "clavicle"), ("upperarm", "upperarm"), ("forearm", "lowerarm"),
                         ("hand", "hand"), ("thigh", "thigh"), ("shin", "calf"), ("foot", "foot"),
                         ("toe", "ball"), ("thumb1", "thumb_01"), ("thumb2", "thumb_02"),
                         ("index1", "index_01"), ("index2", "index_02"))}}
SCHEMES["biped"] = {"hips": "Bip01 Pelvis", "spine": "Bip01 Spine", "spine1": "Bip01 Spine1",
                    "chest": "Bip01 Spine2", "neck": "Bip01 Neck", "head": "Bip01 Head",
                    **{f"{r}_{s}": f"Bip01 {s.upper()} {n}" for s in "lr" for r, n in (
                        ("clavicle", "Clavicle"), ("upperarm", "UpperArm"), ("forearm", "Forearm"),
                        ("hand", "Hand"), ("thigh", "Thigh"), ("shin", "Calf"), ("foot", "Foot"),
                        ("toe", "Toe0"), ("thumb1", "Finger0"), ("thumb2", "Finger01"),
                        ("index1", "Finger1"), ("index2", "Finger11"))}}
SCHEMES["smpl"] = {"hips": "pelvis", "spine": "spine1", "spine1": "spine2", "chest": "spine3", "neck": "neck",
                   "head": "head", **{f"{r}_{s}": f"{S}_{n}" for s, S in (("l", "left"), ("r", "right")) for r, n in (
                       ("clavicle", "collar"), ("upperarm", "shoulder"), ("forearm", "elbow"), ("hand", "wrist"),
                       ("thigh", "hip"), ("shin", "knee"), ("foot", "ankle"), ("toe", "foot"),
                       ("thumb1", "thumb1"), ("thumb2", "thumb2"), ("index1", "index1"), ("index2", "index2"))}}
SCHEMES["optitrack"] = {"hips": "Hip", "spine": "Ab", "spine1": "Ab2", "chest": "Chest", "neck": "Neck",
                        "head": "Head", **{f"{r}_{s}": f"{s.upper()}{n}" for s in "lr" for r, n in (
                            ("clavicle", "Shoulder"), ("upperarm", "UArm"), ("forearm", "FArm"), ("hand", "Hand"),
                            ("thigh", "Thigh"), ("shin", "Shin"), ("foot", "Foot"), ("toe", "Toe"),
                            ("thumb1", "Thumb1"), ("thumb2", "Thumb2"), ("index1", "Index1"),
                            ("index2", "Index2"))}}
SCHEMES["xsens"] = {"hips": "Pelvis", "spine": "L5", "spine1": "L3", "chest": "T8", "neck": "Neck", "head": "Head",
                    **{f"{r}_{s}": f"{S}{n}" for s, S in (("l", "Left"), ("r", "Right")) for r, n in (
                        ("clavicle", "Shoulder"), ("upperarm", "UpperArm"), ("forearm", "ForeArm"), ("hand", "Hand"),
                        ("thigh", "UpperLeg"), ("shin", "LowerLeg"), ("foot", "Foot"), ("toe", "Toe"),
                        ("thumb1", "ThumbProximal"), ("thumb2", "ThumbIntermediate"),
                        ("index1", "IndexProximal"), ("index2", "IndexIntermediate"))}}
SCHEMES["biovision"] = {"hips": "Hips", "spine": "Abdomen", "spine1": "Spine", "chest": "Chest", "neck": "Neck",
                        "head": "Head", **{f"{r}_{s}": f"{S}{n}" for s, S in (("l", "Left"), ("r", "Right"))
                                           for r, n in (
                            ("clavicle", "Collar"), ("upperarm", "Shoulder"), ("forearm", "Elbow"),
                            ("hand", "Wrist"), ("thigh", "Hip"), ("shin", "Knee"), ("foot", "Ankle"),
                            ("toe", "Toe"), ("thumb1", "Thumb1"), ("thumb2", "Thumb2"), ("index1", "Index1"),
                            ("index2", "Index2"))}}


@dataclass(frozen=True)
class WalkSpec:
    seconds: float = 2.0
    fps: float = 60.0
    speed: float = 1.0           # m/s forward (+Z)
    period: float = 1.0          # s per gait cycle
    turn_deg_per_s: float = 0.0  # heading change (about +Y)


def synthetic_walk(spec: WalkSpec | None = None, names: dict[str, str] | None = None, rest: str = "T",
                   order: str | dict[str, str] = "ZXY", up: str = "+y", fingers: bool = True,
                   scale: float = 1.0, position_channels: tuple[str, ...] = ()) -> Motion:
    """A walking humanoid Motion (metres; in the world +Y up unless up='+z').

    names: role -> joint name (default: CMU-style names); rest: "T" or "A" (arms 45 degrees down);
    order: rotation channel order for every joint, or role -> order; scale: body size factor;
    position_channels: roles that also get X/Y/Z position channels (non-root position channels).
    """
    spec = spec or WalkSpec()
    names = names or SCHEMES["cmu"]
    roles = [r for r, _, _ in _SKELETON if fingers or not r.startswith(("thumb", "index"))]
    idx = {r: i for i, r in enumerate(roles)}
    parent_role = {r: p for r, p, _ in _SKELETON}
    offs_t = {r: np.array(o) * scale for r, _, o in _SKELETON}
    J = len(roles)
    parents = np.array([-1 if parent_role[r] is None else idx[parent_role[r]] for r in roles])
    # rest offsets: A-pose turns the arm chain 45 degrees down (about +Z for the left, -Z for the right)
    C = {r: np.eye(3) for r in roles}
    if rest.upper() == "A":
        for r in roles:
            if r in _ARM:
                C[r] = Rotation.from_euler("z", -45 if r.endswith("_l") else 45, degrees=True).as_matrix()
    elif rest.upper() != "T":
        raise ValueError(f"rest must be 'T' or 'A', got {rest!r}")
    offsets = np.stack([C[parent_role[r]] @ offs_t[r] if parent_role[r] else offs_t[r] for r in roles])
    end_sites = {idx[r]: [C[r] @ (np.array(o) * scale)] for r, o in _END_SITES.items() if r in idx}

    F = int(round(spec.seconds * spec.fps))
    t = np.arange(F) / spec.fps
    G = _walk_world_rotations(roles, t, spec, scale, offs_t, parent_role)     # world rotations relative to T-rest
    # relative to this skeleton's rest: G_rest_j = G_T_j @ C_j^T
    Gr = np.stack([G[r] @ C[r].T for r in roles], axis=1)                     # (F, J, 3, 3)
    local = np.empty_like(Gr)
    for j, p in enumerate(parents):
        local[:, j] = Gr[:, j] if p < 0 else np.swapaxes(Gr[:, p], -1, -2) @ Gr[:, j]
    trans = np.broadcast_to(offsets, (F, J, 3)).copy()
    trans[:, 0] = _hips_path(t, spec, scale)
    if up == "+z":
        Z = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])   # +Y -> +Z
        local[:, 0] = Z @ local[:, 0]
        trans[:, 0] = trans[:, 0] @ Z.T
    elif up != "+y":
        raise ValueError(f"up must be '+y' or '+z', got {up!r}")
    chans = []
    for r in roles:
        o = order if isinstance(order, str) else order.get(r, "ZXY")
        rot = [f"{a}rotation" for a in o]
        pos = ["Xposition", "Yposition", "Zposition"] if (r == "hips" or r in position_channels) else []
        chans.append(pos + rot)
    return Motion([names[r] for r in roles], parents, offsets, chans, local, trans, 1.0 / spec.fps,
                  end_sites, scale=1.0, units="m", source="synthetic_walk")


def _hips_path(t: np.ndarray, spec: WalkSpec, scale: float) -> np.ndarray:
    heading = np.radians(spec.turn_deg_per_s) * t
    v = spec.speed * scale
    # integrate the heading for a curved path
    dz = v * np.cos(heading)
    dx = v * np.sin(heading)
    dt = np.diff(t, prepend=t[0])
    x, z = np.cumsum(dx * dt), np.cumsum(dz * dt)
    y = scale * (0.88 + 0.015 * np.cos(4 * np.pi * t / spec.period))
    return np.stack([x, y, z], axis=1)


def _walk_world_rotations(roles, t, spec, scale, offs_t, parent_role) -> dict[str, np.ndarray]:
    """World rotations (relative to the T-pose rest) per role: (F, 3, 3)."""
    F = len(t)
    heading = np.radians(spec.turn_deg_per_s) * t
    Rh = Rotation.from_euler("y", heading[:, None]).as_matrix()                      # (F, 3, 3)
    hips = _hips_path(t, spec, scale)
    phase = 2 * np.pi * t / spec.period
    G: dict[str, np.ndarray] = {}
    G["hips"] = Rh @ Rotation.from_euler("y", 0.08 * np.sin(phase)[:, None]).as_matrix()
    l1, l2 = 0.42 * scale, 0.42 * scale
    ankle_h = 0.06 * scale
    stride = spec.speed * spec.period * scale          # distance a foot travels per cycle
    for s, ph0 in (("l", 0.0), ("r", 0.5)):
        u = (t / spec.period + ph0) % 1.0              # 0..0.6 stance, 0.6..1 swing
        # foot position along the path (relative to the hips' forward distance), planted in stance
        stance = u < 0.6
        # stance: foot moves back relative to hips from +0.3 to -0.3 stride; swing: forward again
        rel = np.where(stance, stride * (0.3 - u), stride * (-0.3 + (u - 0.6) / 0.4 * 0.6))
        lift = np.where(stance, 0.0, 0.08 * scale * np.sin(np.pi * (u - 0.6) / 0.4))
        hip_local = offs_t[f"thigh_{s}"]                                    # hip joint relative to the hips
        hipj = hips + np.einsum("fab,b->fa", G["hips"], hip_local)
        # in the heading frame: leg plane is (forward, up)
        fwd = np.einsum("fab,b->fa", Rh, np.array([0.0, 0.0, 1.0]))
        goal = hips * np.array([1.0, 0.0, 1.0]) + fwd * rel[:, None]
        goal = goal + np.einsum("fab,b->fa", Rh, np.array([hip_local[0], 0.0, 0.0]))
        goal[:, 1] = ankle_h + lift
        d = goal - hipj
        dist = np.clip(np.linalg.norm(d, axis=1), 1e-6, (l1 + l2) * 0.9999)
        dh = d / np.linalg.norm(d, axis=1, keepdims=True)
        cos_k = np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1, 1)
        a_hip = np.arccos(cos_k)                                            # angle between thigh and hip->goal
        # thigh direction: rotate dh towards forward by a_hip about the leg plane's normal (left axis)
        left = np.einsum("fab,b->fa", Rh, np.array([1.0, 0.0, 0.0]))
        thigh_dir = _rotate(dh, left, -a_hip)                               # knee forward
        knee = hipj + thigh_dir * l1
        shin_dir = (goal - knee) / np.linalg.norm(goal - knee, axis=1, keepdims=True)
        down = np.array([0.0, -1.0, 0.0])
        G[f"thigh_{s}"] = _swing(down, thigh_dir) @ Rh
        G[f"shin_{s}"] = _swing(down, shin_dir) @ Rh
        G[f"foot_{s}"] = Rh.copy()
        G[f"toe_{s}"] = Rh.copy()
    for r in ("spine", "spine1", "chest", "neck", "head"):
        G[r] = Rh @ Rotation.from_euler("x", 0.03 * np.sin(2 * phase)[:, None]).as_matrix()
    for s, sign in (("l", 1.0), ("r", -1.0)):
        down = Rotation.from_euler("z", -sign * 75, degrees=True).as_matrix()      # arm hangs 75 deg down
        swing = Rotation.from_euler("x", sign * 0.35 * np.sin(phase)[:, None]).as_matrix()  # opposite to the leg
        G[f"clavicle_{s}"] = Rh.copy()
        G[f"upperarm_{s}"] = Rh @ swing @ down
        elbow = Rotation.from_euler("y", -sign * (0.3 + 0.15 * np.sin(phase))[:, None]).as_matrix()
        G[f"forearm_{s}"] = G[f"upperarm_{s}"] @ elbow
        G[f"hand_{s}"] = G[f"forearm_{s}"]
        curl = Rotation.from_euler("z", sign * 0.4 * np.ones((F, 1))).as_matrix()
        for f in ("thumb1", "index1"):
            G[f"{f}_{s}"] = G[f"hand_{s}"] @ curl
        for f in ("thumb2", "index2"):
            G[f"{f}_{s}"] = G[f"hand_{s}"] @ curl @ curl
    return {r: G[r] for r in roles}


def _rotate(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(axis * angle[:, None]).apply(v)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from mocap_retarget.rotations import rotation_between

    return rotation_between(np.broadcast_to(a, b.shape), b)
