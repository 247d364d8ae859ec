"""Retargeting a source motion (any vendor's skeleton) onto a target skeleton (the double's rig).

The target is given as plain arrays (:class:`TargetSkeleton`: joint names, parents in topological
order, bind world matrices in Doppel's frame), so this module does not depend on the Rig class.

Method, per frame and vectorised over frames:

1. Source world: forward kinematics, then the source's up axis (detected from the motion: the mean
   hips-to-chest direction, snapped to a coordinate axis; or given) is turned to +Y.
2. Rest-pose alignment: the source rest pose is turned to face +Z with its left on +X (from its hips
   and thighs); for every mapped bone a constant rotation Q takes the target's bind bone direction to
   the source's rest direction, its twist fixed by a second axis shared by both rest poses (forward,
   or up for feet), so T-pose and A-pose sources give the same result; the hips use a full frame (up
   and left). This is what absorbs T-pose vs A-pose.
3. Rotation transfer in world space: target world rotation = (source world rotation relative to its
   rest) @ Q @ target bind rotation; then a swing correction makes the bone point exactly where the
   source bone points (covering source joints between two mapped ones). Unmapped target bones stay at
   rest relative to their parent.
4. Root motion: the source hips path scaled by the ratio of leg lengths (thigh + shin), heights
   measured from each skeleton's floor, so facing and the ground plane are preserved.
5. Feet: contacts detected on the source (foot height and speed); on the target each contact's ankle
   is locked in place (no sliding), no foot point goes below the floor (no sinking), with short blends
   in and out; a two-bone IK (thigh, shin; knee kept in its plane) reaches the corrected ankle while the
   foot keeps its world orientation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion, forward_kinematics
from mocap_retarget.contacts import ContactConfig, detect_contacts, runs
from mocap_retarget.roles import BONE_CHILD, FINGER_ROLES, SIDES, BoneMap, auto_map
from mocap_retarget.rotations import frame_from, normalize, rotation_between, snap_to_axis

log = logging.getLogger(__name__)

_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


@dataclass
class TargetSkeleton:
    """The skeleton to retarget onto, in Doppel's frame (metres, +Y up, facing +Z).

    names: J joint names; parents (J,) int64 topological (-1 = root); bind_world (J, 4, 4) float64 bind
    (rest) world matrices (rotation + joint position); floor_y: height of the floor under the bind pose.
    """

    names: list[str]
    parents: np.ndarray
    bind_world: np.ndarray
    floor_y: float = 0.0

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.bind_world = np.asarray(self.bind_world, dtype=np.float64)
        J = len(self.names)
        if self.parents.shape != (J,) or self.bind_world.shape != (J, 4, 4):
            raise ValueError(f"target skeleton: {J} names, parents {self.parents.shape}, bind_world "
                             f"{self.bind_world.shape}; expected ({J},) and ({J}, 4, 4)")
        if any(p >= j for j, p in enumerate(self.parents)):
            raise ValueError("target skeleton: parents must be in topological order (parent index < child)")

    @classmethod
    def from_rig(cls, rig) -> TargetSkeleton:
        """From a ``rigging.Rig`` (its pose convention is this module's: local rotations relative to the
        bind pose in each joint's bind frame, root translation a world offset). The floor is the lowest
        bind vertex."""
        floor = float(np.asarray(rig.vertices)[:, 1].min()) if len(rig.vertices) else 0.0
        return cls(list(rig.joint_names), np.asarray(rig.parents), np.asarray(rig.bind_matrices), floor)

    @classmethod
    def from_motion(cls, motion: Motion, floor_y: float | None = None) -> TargetSkeleton:
        """A BVH skeleton's rest pose as a target (bind rotations identity, as in BVH). floor_y defaults
        to the lowest rest point (End Sites included)."""
        rest = motion.rest_positions()
        B = np.repeat(np.eye(4)[None], motion.num_joints, axis=0)
        B[:, :3, 3] = rest
        if floor_y is None:
            pts = [rest] + [rest[j] + np.asarray(o)[None] for j, v in motion.end_sites.items() for o in v]
            floor_y = float(np.vstack(pts)[:, 1].min())
        return cls(list(motion.names), motion.parents.copy(), B, floor_y)

    @property
    def bind_rot(self) -> np.ndarray:
        return self.bind_world[:, :3, :3]

    @property
    def bind_pos(self) -> np.ndarray:
        return self.bind_world[:, :3, 3]

    def bind_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Bind rotation (J, 3, 3) and translation (J, 3) of each joint in its parent's bind frame."""
        R, t = self.bind_rot.copy(), self.bind_pos.copy()
        for j, p in enumerate(self.parents):
            if p >= 0:
                R[j] = self.bind_rot[p].T @ self.bind_rot[j]
                t[j] = self.bind_rot[p].T @ (self.bind_pos[j] - self.bind_pos[p])
        return R, t


@dataclass
class Animation:
    """A motion on the target skeleton.

    local_rotations (F, J, 3, 3): each joint's rotation relative to its bind pose, in its own bind frame:
    world_j = world_parent @ bind_local_j @ [local_rotations_j | 0]. root_translation (F, 3) metres:
    displacement of the root joint from its bind position (world axes). fps: frames per second.
    """

    joint_names: list[str]
    parents: np.ndarray
    local_rotations: np.ndarray
    root_translation: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    def world(self, target: TargetSkeleton) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and joint positions (F, J, 3) on ``target``."""
        Rb, tb = target.bind_local()
        F = self.num_frames
        lrot = Rb[None] @ self.local_rotations
        ltr = np.broadcast_to(tb, (F, *tb.shape)).copy()
        root = target.parents < 0
        ltr[:, root] = tb[root] + self.root_translation[:, None]
        return forward_kinematics(target.parents, lrot, ltr)

    def save(self, path: str | Path) -> Path:
        """Write an .npz (atomic) with local_rotations, root_translation, fps, joint_names, parents."""
        import io

        from core.storage import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, local_rotations=self.local_rotations.astype(np.float32),
                            root_translation=self.root_translation.astype(np.float32),
                            fps=np.float64(self.fps), joint_names=np.array(self.joint_names),
                            parents=self.parents.astype(np.int64))
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Animation:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: animation file not found")
        with np.load(path) as z:
            missing = {"local_rotations", "root_translation", "fps", "joint_names", "parents"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: not a Doppel animation (missing {sorted(missing)})")
            return cls([str(n) for n in z["joint_names"]], z["parents"], z["local_rotations"].astype(np.float64),
                       z["root_translation"].astype(np.float64), float(z["fps"]))


@dataclass(frozen=True)
class RetargetConfig:
    up_axis: str = "auto"              # source world up: "auto" (from the motion) or +x/-x/+y/-y/+z/-z
    fingers: bool = True               # transfer fingers when both skeletons have them
    cleanup: bool = True               # enforce foot contacts (lock, no sinking) with two-bone IK
    blend_s: float = 0.1               # seconds to blend into and out of a foot lock
    contact: ContactConfig = field(default_factory=ContactConfig)


@dataclass
class RetargetResult:
    animation: Animation
    source_map: BoneMap
    target_map: BoneMap
    pairs: list[tuple[str, int, int]]          # (role, source joint, target joint) transferred
    contacts: np.ndarray                        # (F, 2) bool, left and right foot planted (from the source)
    scale: float                                # target leg length / source leg length
    source_positions: np.ndarray                # (F, Js, 3) source joints in Doppel's frame, metres
    target_positions: np.ndarray                # (F, J, 3) target joints after cleanup, metres
    target_positions_raw: np.ndarray            # (F, J, 3) before foot cleanup
    source_floor: float                         # metres, source floor height in Doppel's frame
    up_axis: str                                # the source up axis used
    source_parents: np.ndarray | None = None    # (Js,) parents of the source skeleton
    metrics: dict = field(default_factory=dict)


def _up_rotation(up: np.ndarray) -> np.ndarray:
    """Rotation taking the unit axis ``up`` to +Y (a proper rotation, 90 or 180 degrees)."""
    return rotation_between(up, np.array([0.0, 1.0, 0.0]))


def retarget(motion: Motion, target: TargetSkeleton, config: RetargetConfig | None = None,
             source_map: BoneMap | None = None, target_map: BoneMap | None = None,
             progress: Callable[[str], None] | None = None) -> RetargetResult:
    """Retarget ``motion`` onto ``target`` (see the module docstring for the method).

    source_map / target_map: bone maps (default: auto_map on each skeleton). Raises BoneMapError when
    either skeleton lacks legs. Returns a RetargetResult (animation, contacts, metrics).
    """
    cfg = config or RetargetConfig()
    step = progress or (lambda _s: None)
    smap = source_map or auto_map(motion.names, motion.parents, motion.rest_positions(), motion.end_sites)
    smap.check_humanoid(motion.source or "source skeleton")
    tmap = target_map or auto_map(target.names, target.parents, target.bind_pos)
    tmap.check_humanoid("target skeleton")
    F = motion.num_frames

    step("forward kinematics")
    Gs, Ps = motion.forward_kinematics()
    # 1. source up axis -> +Y
    sh = smap.roles["hips"]
    top = smap.roles.get("chest", smap.roles.get("neck", smap.roles.get("head", smap.roles.get("spine"))))
    if cfg.up_axis == "auto":
        if top is None:
            raise ValueError(f"{motion.source}: cannot detect the up axis without a spine/chest/head joint; "
                             "give it (up_axis)")
        up = snap_to_axis(normalize(Ps[:, top] - Ps[:, sh]).mean(0))
        up_name = next(k for k, v in _AXES.items() if np.allclose(v, up))
    else:
        if cfg.up_axis.lower() not in _AXES:
            raise ValueError(f"up_axis must be 'auto' or one of {sorted(_AXES)}, got {cfg.up_axis!r}")
        up_name = cfg.up_axis.lower()
        up = np.array(_AXES[up_name], dtype=np.float64)
    A = _up_rotation(up)
    Gs = np.einsum("ab,fjbc->fjac", A, Gs)
    Ps = np.einsum("ab,fjb->fja", A, Ps)

    # 2. canonical source rest: facing +Z, left +X, up +Y
    rest = motion.rest_positions()
    sroles = smap.roles
    rest_up = snap_to_axis(rest[top] - rest[sh]) if top is not None else np.array([0.0, 1.0, 0.0])
    rest_left = rest[sroles["thigh_l"]] - rest[sroles["thigh_r"]]
    rest_left = snap_to_axis(rest_left - (rest_left @ rest_up) * rest_up)
    R_rest = frame_from(rest_up, rest_left).T            # rows: left, up, forward -> maps to X, Y, Z
    rest_c = rest @ R_rest.T                             # (Js, 3)

    # pairs of (role, source joint, target joint)
    troles = tmap.roles
    pairs = [(r, sroles[r], troles[r]) for r in troles if r in sroles
             and (cfg.fingers or r not in {f"{f}_{s}" for f in FINGER_ROLES for s in SIDES})]
    pairs.sort(key=lambda t: t[2])
    tgt_of_role = {r: k for r, _, k in pairs}
    src_of_role = {r: j for r, j, _ in pairs}

    # 3. scale from leg lengths
    def leg(pos: np.ndarray, roles: dict) -> float:
        return float(np.mean([np.linalg.norm(pos[roles[f"thigh_{s}"]] - pos[roles[f"shin_{s}"]])
                              + np.linalg.norm(pos[roles[f"shin_{s}"]] - pos[roles[f"foot_{s}"]]) for s in SIDES]))

    leg_s, leg_t = leg(rest, sroles), leg(target.bind_pos, troles)
    if leg_s <= 0:
        raise ValueError(f"{motion.source}: the source legs have zero length")
    scale = leg_t / leg_s

    step("rotation transfer")
    Bw, bp = target.bind_rot, target.bind_pos
    Rb, tb = target.bind_local()
    J = len(target.names)
    W = np.empty((J, F, 3, 3))              # joint-major: every W[k] is contiguous (much faster)
    # a bone's end: the joint of its child role (when both skeletons have it)
    def next_role(r: str) -> str | None:
        c = BONE_CHILD.get(r)
        while c is not None and c not in tgt_of_role and c in ("spine", "chest", "neck"):
            c = BONE_CHILD.get(c)         # skip spine links one skeleton lacks
        return c if c in tgt_of_role else None

    def child_role(r: str) -> str | None:
        """The role ending the bone that starts at r: the next transferred role down the chain whose
        joint is away from r's joint on both skeletons (zero-length links are skipped)."""
        c = next_role(r)
        while c is not None:
            ls = np.linalg.norm(rest_c[src_of_role[c]] - rest_c[src_of_role[r]])
            lt = np.linalg.norm(bp[tgt_of_role[c]] - bp[tgt_of_role[r]])
            if ls > 1e-3 * leg_s and lt > 1e-3 * leg_t:
                return c
            c = next_role(c)
        return None

    Q: dict[str, np.ndarray] = {}
    role_of_target = {k: r for r, _, k in pairs}
    for k in range(J):
        p = target.parents[k]
        r = role_of_target.get(k)
        if r is None:
            W[k] = Rb[k] if p < 0 else W[p] @ Rb[k]
            continue
        j = src_of_role[r]
        c = child_role(r)
        if r == "hips":
            up_s = rest_c[src_of_role[c]] - rest_c[j] if c else np.array([0.0, 1.0, 0.0])
            up_t = bp[tgt_of_role[c]] - bp[k] if c else np.array([0.0, 1.0, 0.0])
            Fs = frame_from(up_s, rest_c[sroles["thigh_l"]] - rest_c[sroles["thigh_r"]])
            Ft = frame_from(up_t, bp[troles["thigh_l"]] - bp[troles["thigh_r"]])
            Q[r] = Fs @ Ft.T
        elif c is not None:
            # bone direction matched exactly; twist fixed by a second axis common to both rest poses
            # (forward +Z, or up +Y for feet and toes), so a T- and an A-pose source give the same result
            sec = np.array([0.0, 1.0, 0.0]) if r.startswith(("foot", "toe")) else np.array([0.0, 0.0, 1.0])
            Fs = frame_from(rest_c[src_of_role[c]] - rest_c[j], sec)
            Ft = frame_from(bp[tgt_of_role[c]] - bp[k], sec)
            Q[r] = Fs @ Ft.T
        else:
            anc = target.parents[k]
            while anc >= 0 and anc not in role_of_target:
                anc = target.parents[anc]
            Q[r] = Q[role_of_target[anc]] if anc >= 0 else np.eye(3)
        dR = Gs[:, j] @ R_rest.T                                   # source rotation relative to canonical rest
        W0 = dR @ (Q[r] @ Bw[k])
        if c is not None and r != "hips":
            seg_local = Bw[k].T @ (bp[tgt_of_role[c]] - bp[k])    # bone vector in k's bind frame
            v_t = W0 @ seg_local
            v_s = Ps[:, src_of_role[c]] - Ps[:, j]
            W0 = rotation_between(v_t, v_s) @ W0
        W[k] = W0
    mapped = np.zeros(J, dtype=bool)
    mapped[[k for _, _, k in pairs]] = True
    mapped[target.parents < 0] = True

    step("root motion")
    # 4. root motion: hips path scaled about the floor
    foot_pts_s = [j for s in SIDES for j in (sroles[f"foot_{s}"], sroles.get(f"toe_{s}")) if j is not None]
    sole_s = _sole_offsets(motion, smap, R_rest)
    floor_s = float(np.percentile(Ps[:, foot_pts_s, 1].min(axis=1), 2)) - sole_s
    th = troles["hips"]
    foot_pts_t = [k for s in SIDES for k in (troles[f"foot_{s}"], troles.get(f"toe_{s}")) if k is not None]
    sole_t = float(bp[foot_pts_t, 1].min() - target.floor_y)
    hips_t = np.empty((F, 3))
    hips_t[:, [0, 2]] = Ps[:, sh][:, [0, 2]] * scale
    hips_t[:, 1] = target.floor_y + sole_t + scale * (Ps[:, sh, 1] - floor_s - sole_s)
    root_tr = hips_t - bp[th]                 # ancestors of the hips are at bind rotation

    # when the hips are not the root, their ancestors keep their bind rotation (unmapped), so moving the
    # root moves the hips rigidly: the root translation is the hips' displacement either way
    Wt_raw = W
    Pt_raw = _positions(W, target.parents, tb, bp[target.parents < 0] + root_tr[:, None])

    step("foot contacts")
    contacts = np.zeros((F, 2), dtype=bool)
    for i, s in enumerate(SIDES):
        pts = [sroles[f"foot_{s}"]] + ([sroles[f"toe_{s}"]] if f"toe_{s}" in sroles else [])
        rest_h = rest_c[pts, 1] - (rest_c[foot_pts_s, 1].min() - sole_s)
        contacts[:, i] = detect_contacts(Ps[:, pts], rest_h, floor_s, motion.fps, leg_s, cfg.contact)

    Wt, Pt = Wt_raw, Pt_raw
    if cfg.cleanup:
        step("foot IK")
        Wt, drop = _enforce_feet(target, tmap, Wt_raw, Pt_raw, contacts, cfg, motion.fps, mapped)
        root_tr = root_tr - drop[:, None] * np.array([0.0, 1.0, 0.0])
        Pt = _positions(Wt, target.parents, tb, bp[target.parents < 0] + root_tr[:, None])
    anim = Animation(list(target.names), target.parents.copy(), _local_rotations(Wt, target.parents, Rb, mapped),
                     root_tr, motion.fps)

    res = RetargetResult(anim, smap, tmap, pairs, contacts, scale, Ps, Pt, Pt_raw, floor_s, up_name,
                         motion.parents.copy())
    step("metrics")
    from mocap_retarget.metrics import compute_metrics

    res.metrics = compute_metrics(res, target, Wt_raw.transpose(1, 0, 2, 3), Wt.transpose(1, 0, 2, 3))
    return res


def _sole_offsets(motion: Motion, smap: BoneMap, R_rest: np.ndarray) -> float:
    """Height of the lowest foot joint above the lowest foot point (End Sites included) in the source
    rest pose, metres: how far the foot joints sit above the sole (0 when there are no End Sites)."""
    rest_c = motion.rest_positions() @ R_rest.T
    joints, lows = [], []
    for s in SIDES:
        for r in (f"foot_{s}", f"toe_{s}"):
            j = smap.roles.get(r)
            if j is None:
                continue
            joints.append(rest_c[j, 1])
            lows += [(rest_c[j] + R_rest @ site)[1] for site in motion.end_sites.get(j, [])]
    return max(0.0, float(min(joints) - min(lows + joints)))


def foot_sole_points(target: TargetSkeleton, tmap: BoneMap) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Per side, points on the sole carried by the foot and toe bones: (joint, offset in its bind frame).

    The heel point is the ankle dropped to the floor, the ball point the toe joint dropped to the floor."""
    out = {}
    for s in SIDES:
        pts = []
        for r in (f"foot_{s}", f"toe_{s}"):
            k = tmap.roles.get(r)
            if k is None:
                continue
            ground = target.bind_pos[k].copy()
            ground[1] = target.floor_y
            pts.append((k, target.bind_rot[k].T @ (ground - target.bind_pos[k])))
        out[s] = pts
    return out


def sole_heights(Wt: np.ndarray, Pt: np.ndarray, target: TargetSkeleton, tmap: BoneMap) -> np.ndarray:
    """(F, 2) height above the floor of the lowest sole point of each foot (negative = below the floor)."""
    pts = foot_sole_points(target, tmap)
    out = np.full((Wt.shape[0], 2), np.inf)
    for i, s in enumerate(SIDES):
        for k, off in pts[s]:
            y = Pt[:, k, 1] + (Wt[:, k] @ off)[:, 1] - target.floor_y
            out[:, i] = np.minimum(out[:, i], y)
    return out


def _positions(W: np.ndarray, parents: np.ndarray, tb: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """Joint positions (F, J, 3) (a transposed view) from joint-major world rotations W (J, F, 3, 3), bind
    local offsets tb (J, 3) and the roots' positions (F, n_roots, 3)."""
    J, F = W.shape[:2]
    P = np.empty((J, F, 3))
    P[parents < 0] = np.swapaxes(root_pos, 0, 1)
    for k, p in enumerate(parents):
        if p >= 0:
            P[k] = P[p] + W[p] @ tb[k]
    return P.transpose(1, 0, 2)


def _local_rotations(W: np.ndarray, parents: np.ndarray, Rb: np.ndarray, mapped: np.ndarray) -> np.ndarray:
    """Local rotations relative to bind (F, J, 3, 3) from joint-major world rotations W (J, F, 3, 3):
    R_k = Rb_k^T W_p^T W_k; joints not in ``mapped`` are at rest relative to their parent by
    construction (identity)."""
    J, F = W.shape[:2]
    L = np.empty((F, J, 3, 3))
    L[:] = np.eye(3)
    for k, p in enumerate(parents):
        if not mapped[k]:
            continue
        rel = W[k] if p < 0 else np.swapaxes(W[p], -1, -2) @ W[k]
        L[:, k] = Rb[k].T @ rel
    return L


def _enforce_feet(target: TargetSkeleton, tmap: BoneMap, Wt: np.ndarray, Pt: np.ndarray, contacts: np.ndarray,
                  cfg: RetargetConfig, fps: float, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lock planted ankles, lift feet out of the floor, lower the hips where a goal is out of the leg's
    reach, and solve two-bone IK (thigh, shin) with the foot keeping its world orientation.

    Wt: joint-major world rotations (J, F, 3, 3); Pt (F, J, 3). Returns the new joint-major world
    rotations and the hips' drop (F,) metres (>= 0, smoothed).
    """
    W = Wt.copy()
    Rb, _ = target.bind_local()
    F = Wt.shape[1]
    nb = max(1, int(round(cfg.blend_s * fps)))
    soles = sole_heights(Wt.transpose(1, 0, 2, 3), Pt, target, tmap)
    parents = target.parents
    legs = []
    for i, s in enumerate(SIDES):
        kt, ks, kf = tmap.roles[f"thigh_{s}"], tmap.roles[f"shin_{s}"], tmap.roles[f"foot_{s}"]
        ankle = Pt[:, kf].copy()
        weight = np.zeros(F)
        lock = np.zeros((F, 3))
        for a, b in runs(contacts[:, i]):
            p = ankle[a:b].mean(0)
            # no sinking: the lowest sole point of the planted foot stays on or above the floor
            p[1] = max(p[1], ankle[a:b, 1].mean() - soles[a:b, i].mean(), ankle[a:b, 1].max() - soles[a:b, i].max())
            lo, hi = max(0, a - nb), min(F, b + nb)
            for f in range(lo, hi):
                w = 1.0 if a <= f < b else (1.0 - (a - f) / (nb + 1) if f < a else 1.0 - (f - b + 1) / (nb + 1))
                if w > weight[f]:
                    weight[f], lock[f] = w, p
        goal = ankle * (1 - weight[:, None]) + lock * weight[:, None]
        l1 = np.linalg.norm(target.bind_pos[ks] - target.bind_pos[kt])
        l2 = np.linalg.norm(target.bind_pos[kf] - target.bind_pos[ks])
        legs.append((kt, ks, kf, ankle, goal, l1, l2, weight))
    # hips drop: how far the hips must come down for every goal to be within 99.5% of the leg's reach
    need = np.zeros(F)
    for kt, _, _, _, goal, l1, l2, _ in legs:
        d = goal - Pt[:, kt]
        reach = 0.995 * (l1 + l2)
        horiz = np.linalg.norm(d[:, [0, 2]], axis=1)
        vert = np.sqrt(np.maximum(reach ** 2 - horiz ** 2, 0.0))
        need = np.maximum(need, np.clip(-d[:, 1] - vert, 0.0, 0.15 * (l1 + l2)))
    drop = _smooth_upper(need, nb)
    down = drop[:, None] * np.array([0.0, 1.0, 0.0])
    for i, (kt, ks, kf, ankle, goal, l1, l2, weight) in enumerate(legs):
        # outside locks, lift a foot that the lowered hips (or the source) put into the floor
        goal[:, 1] -= np.minimum(soles[:, i] - drop, 0.0) * (1.0 - weight)
        hip, knee, ank = Pt[:, kt] - down, Pt[:, ks] - down, ankle - down
        knee_new, ankle_new = two_bone_ik(hip, knee, ank, goal, l1, l2)
        dT = rotation_between(knee - hip, knee_new - hip)                                 # thigh swing
        dS = rotation_between((dT @ (ank - knee)[..., None])[..., 0], ankle_new - knee_new)  # shin swing
        W[kt] = dT @ Wt[kt]
        W[ks] = dS @ dT @ Wt[ks]
        # the rest of the thigh's subtree follows its parent (keeping its local rotation); the foot and
        # everything below it keep their world rotations
        in_leg = _subtree_mask(parents, kt) & ~_subtree_mask(parents, kf)
        for k in np.flatnonzero(in_leg):
            if k in (kt, ks):
                continue
            p = parents[k]
            W[k] = W[p] @ Rb[k] if not mapped[k] else W[p] @ (np.swapaxes(Wt[p], -1, -2) @ Wt[k])
    return W, drop


def _smooth_upper(x: np.ndarray, n: int) -> np.ndarray:
    """A smooth curve >= x (F,): running maximum over +-n frames, then a moving average over +-n/2."""
    F = len(x)
    if not x.any():
        return x.copy()
    pad = np.pad(x, n, mode="edge")
    runmax = np.lib.stride_tricks.sliding_window_view(pad, 2 * n + 1).max(axis=1)       # (F,)
    h = max(1, n // 2)
    padm = np.pad(runmax, h, mode="edge")
    return np.convolve(padm, np.ones(2 * h + 1) / (2 * h + 1), mode="valid")[:F]


def _subtree_mask(parents: np.ndarray, top: int) -> np.ndarray:
    """(J,) bool: ``top`` and its descendants (parents in topological order)."""
    m = np.zeros(len(parents), dtype=bool)
    m[top] = True
    for k in range(top + 1, len(parents)):
        if parents[k] >= 0 and m[parents[k]]:
            m[k] = True
    return m


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray, l1: float, l2: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK, batched: hip, knee, ankle, goal (F, 3); bone lengths l1, l2 (metres).

    Returns (knee, ankle) (F, 3): the ankle reaches the goal when it is within reach (else the leg
    stretches towards it), the knee stays in the plane of hip, goal and the current knee.
    """
    d = goal - hip
    dist = np.linalg.norm(d, axis=-1)
    dh = d / np.maximum(dist, 1e-12)[:, None]
    D = np.clip(dist, abs(l1 - l2) + 1e-6, (l1 + l2) * (1 - 1e-6))
    a = (l1 ** 2 - l2 ** 2 + D ** 2) / (2 * D)
    r = np.sqrt(np.maximum(l1 ** 2 - a ** 2, 0.0))
    pole = knee - hip
    pole = pole - np.sum(pole * dh, axis=-1, keepdims=True) * dh
    pn = np.linalg.norm(pole, axis=-1)
    bad = pn < 1e-9
    if bad.any():   # straight leg: bend the knee forward (+Z)
        fwd = np.array([0.0, 0.0, 1.0]) - np.sum(np.array([0.0, 0.0, 1.0]) * dh[bad], axis=-1, keepdims=True) * dh[bad]
        pole[bad] = fwd
        pn = np.linalg.norm(pole, axis=-1)
    pole = pole / np.maximum(pn, 1e-12)[:, None]
    knee_new = hip + a[:, None] * dh + r[:, None] * pole
    ankle_new = hip + D[:, None] * dh
    return knee_new, ankle_new
