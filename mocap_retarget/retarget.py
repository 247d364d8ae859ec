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
6. Hands (after the feet): contacts detected on the source's wrists (cartwheels, crawls); each contact's wrist
   locked at the source's height above the floor, no wrist below the floor, two-bone arm IK
   (`mocap_retarget.hands`).

One skeleton on both sides (the same joint names and hierarchy, and the same rest pose within 10 degrees a bone: an
Anny take onto an Anny rig): every joint's
world rotation relative to its rest is carried over (steps 2-3 for the hips' alignment only, no swing), so the
joints between roles (spine links, twist bones, metacarpals, toes) move too; the root path as in step 4 (the
source's floor onto the target's). A source of the target's own proportions is reproduced but for that floor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.contacts import ContactConfig, detect_contacts
from mocap_retarget.feet import FootConfig, enforce_feet, sole_heights, source_sole_offset
from mocap_retarget.hands import HandConfig, body_lift, enforce_hands, hand_contacts, hand_sides
from mocap_retarget.roles import BONE_CHILD, FINGER_ROLES, SIDES, BoneMap, auto_map
from mocap_retarget.rotations import frame_from, normalize, rotation_between, snap_to_axis
from mocap_retarget.skeleton import TargetSkeleton
from rigging.animation import Animation

log = logging.getLogger(__name__)

__all__ = ["Animation", "RetargetConfig", "RetargetResult", "TargetSkeleton", "retarget"]

_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}
_FINGERS = {f"{f}_{s}" for f in FINGER_ROLES for s in SIDES}
REST_AGREEMENT_DEG = 10.0   # one skeleton's rest and bind: every bone within this angle, else mapped by roles


@dataclass(frozen=True)
class RetargetConfig:
    up_axis: str = "auto"              # source world up: "auto" (from the motion) or +x/-x/+y/-y/+z/-z
    fingers: bool = True               # transfer fingers when both skeletons have them
    cleanup: bool = True               # enforce foot and hand contacts (lock, no sinking) with two-bone IK
    blend_s: float = 0.1               # seconds to blend into and out of a foot lock
    min_bone_fraction: float = 1e-3    # a link shorter than this fraction of the leg is skipped (zero-length bone)
    contact: ContactConfig = field(default_factory=ContactConfig)
    feet: FootConfig = field(default_factory=FootConfig)   # cleanup limits (its blend_s is replaced by blend_s)
    hands: HandConfig = field(default_factory=HandConfig)  # hands on the ground (blend_s as the feet's)


@dataclass
class RetargetResult:
    """A retarget's animation and what the metrics and previews need. Metrics: `metrics.compute_metrics(result,
    target)` (computed by the caller)."""

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
    sole_heights: np.ndarray | None = None      # (F, 2) left / right sole above the floor after cleanup, metres
    sole_heights_raw: np.ndarray | None = None  # (F, 2) before cleanup
    copied_joints: int = 0                      # one skeleton on both sides: the joints copied (else 0)
    hand_contacts: np.ndarray | None = None     # (F, 2) bool, left and right hand on the ground (from the source)
    hand_sides: tuple[str, ...] = ()            # the sides whose hands were looked at (both skeletons have them)
    source_markers: np.ndarray | None = None    # (F, M, 3) a marker take's markers beside source_positions, metres


@dataclass
class _Source:
    """The source motion in Doppel's frame and its canonical rest pose."""

    G: np.ndarray          # (F, Js, 3, 3) world rotations (up axis turned to +Y)
    P: np.ndarray          # (F, Js, 3) world positions, metres
    up_name: str           # the source up axis
    R_rest: np.ndarray     # (3, 3) rest pose -> canonical (facing +Z, left +X, up +Y)
    rest_c: np.ndarray     # (Js, 3) canonical rest positions
    leg: float             # mean leg length (thigh + shin), metres


@dataclass
class _Pairs:
    """Roles transferred from the source to the target and the bones between them."""

    pairs: list[tuple[str, int, int]]
    src: dict[str, int]             # role -> source joint
    tgt: dict[str, int]             # role -> target joint
    role_of_target: dict[int, str]  # target joint -> role

    @classmethod
    def build(cls, smap: BoneMap, tmap: BoneMap, fingers: bool) -> _Pairs:
        s, t = smap.roles, tmap.roles
        pairs = sorted(((r, s[r], t[r]) for r in t if r in s and (fingers or r not in _FINGERS)), key=lambda x: x[2])
        return cls(pairs, {r: j for r, j, _ in pairs}, {r: k for r, _, k in pairs}, {k: r for r, _, k in pairs})

    def next_role(self, r: str) -> str | None:
        """The next transferred role down r's chain (spine links one skeleton lacks are skipped)."""
        c = BONE_CHILD.get(r)
        while c is not None and c not in self.tgt and c in ("spine", "chest", "neck"):
            c = BONE_CHILD.get(c)
        return c if c in self.tgt else None

    def child_role(self, r: str, rest_s: np.ndarray, rest_t: np.ndarray, min_s: float, min_t: float) -> str | None:
        """The role ending the bone that starts at r: the next transferred role down the chain whose joint is at
        least min_s / min_t metres from r's on both rest poses (zero-length links are skipped)."""
        c = self.next_role(r)
        while c is not None:
            ls = np.linalg.norm(rest_s[self.src[c]] - rest_s[self.src[r]])
            lt = np.linalg.norm(rest_t[self.tgt[c]] - rest_t[self.tgt[r]])
            if ls > min_s and lt > min_t:
                return c
            c = self.next_role(c)
        return None


def retarget(motion: Motion, target: TargetSkeleton, config: RetargetConfig | None = None,
             source_map: BoneMap | None = None, target_map: BoneMap | None = None,
             progress: Callable[[str], None] | None = None) -> RetargetResult:
    """Retarget ``motion`` onto ``target`` (see the module docstring for the method).

    source_map / target_map: bone maps (default: auto_map on each skeleton). Raises BoneMapError when
    either skeleton lacks legs. Returns a RetargetResult (animation, contacts, positions; metrics are
    computed by the caller with `mocap_retarget.metrics.compute_metrics`).
    """
    cfg = config or RetargetConfig()
    step = progress or (lambda _s: None)
    smap = source_map or auto_map(motion.names, motion.parents, motion.rest_positions(), motion.end_sites)
    smap.check_humanoid(motion.source or "source skeleton")
    tmap = target_map or auto_map(target.names, target.parents, target.bind_pos)
    tmap.check_humanoid(target.source)
    step("forward kinematics")
    src = _source_frame(motion, smap, cfg.up_axis)
    pairs = _Pairs.build(smap, tmap, cfg.fingers)
    leg_t = _leg_length(target.bind_pos, tmap.roles)
    scale = leg_t / src.leg
    step("rotation transfer")
    same = same_skeleton(motion, target)
    if same is not None and not _rests_agree(src, target, same, cfg.min_bone_fraction * src.leg):
        same = None                     # one skeleton in two rest poses (T and A): the role mapping absorbs it
    if same is None:
        W, mapped = _transfer_rotations(src, target, smap, tmap, pairs, cfg.min_bone_fraction * src.leg,
                                        cfg.min_bone_fraction * leg_t)
    else:
        W, mapped = _copy_rotations(src, target, smap, tmap, pairs, same, cfg.fingers)
    step("root motion")
    sole_s = source_sole_offset(motion, smap, src.R_rest)
    floor_s, root_tr = _root_motion(src, target, smap, tmap, scale, sole_s)
    Rb, tb = target.bind_local()
    roots = target.parents < 0
    Pt_raw = _positions(W, target.parents, tb, target.bind_pos[roots] + root_tr[:, None])
    step("foot contacts")
    contacts = _source_contacts(src, smap, floor_s, sole_s, motion.fps, cfg.contact)
    soles_raw = sole_heights(W.transpose(1, 0, 2, 3), Pt_raw, target, tmap)
    Wt, Pt = W, Pt_raw
    sides = hand_sides(smap, tmap)
    hands = hand_contacts(src.P, smap, sides, floor_s, motion.fps, src.leg, cfg.hands)
    if cfg.cleanup:
        step("foot IK")
        up = np.array([0.0, 1.0, 0.0])
        height = (src.P[:, [smap.roles.get(f"hand_{s}", 0) for s in SIDES], 1] - floor_s) * scale
        lift = body_lift(target, tmap, Pt_raw, hands, height, sides, cfg.hands, motion.fps, cfg.blend_s, leg_t)
        root_tr = root_tr + lift[:, None] * up
        Pt_in = Pt_raw + lift[:, None, None] * up if lift.any() else Pt_raw
        feet = FootConfig(cfg.blend_s, cfg.feet.reach_fraction, cfg.feet.max_hips_drop)
        Wt, drop = enforce_feet(target, tmap, W, Pt_in, contacts, feet, motion.fps, mapped)
        del W                           # a long take's world rotations are held twice at most from here
        root_tr = root_tr - drop[:, None] * up
        Pt = _positions(Wt, target.parents, tb, target.bind_pos[roots] + root_tr[:, None])
        step("hand IK")
        Wh = enforce_hands(target, tmap, Wt, Pt, hands, height, sides, cfg.hands, motion.fps, cfg.blend_s, mapped)
        if Wh is not Wt:
            Wt, Pt = Wh, _positions(Wh, target.parents, tb, target.bind_pos[roots] + root_tr[:, None])
    anim = Animation(list(target.names), _local_rotations(Wt, target.parents, Rb, mapped), root_tr, motion.fps,
                     parents=target.parents.copy(), source=motion.source)
    return RetargetResult(anim, smap, tmap, pairs.pairs, contacts, scale, src.P, Pt, Pt_raw, floor_s, src.up_name,
                          motion.parents.copy(), sole_heights(Wt.transpose(1, 0, 2, 3), Pt, target, tmap), soles_raw,
                          copied_joints=0 if same is None else int(mapped.sum()), hand_contacts=hands,
                          hand_sides=tuple(sides), source_markers=_markers_up(motion, src.up_name))


def _markers_up(motion: Motion, up_name: str) -> np.ndarray | None:
    """A marker take's markers turned with its skeleton (its up axis to +Y), or None."""
    if motion.markers is None:
        return None
    return motion.markers @ _up_rotation(np.array(_AXES[up_name], dtype=np.float64)).T


def _up_rotation(up: np.ndarray) -> np.ndarray:
    """Rotation taking the unit axis ``up`` to +Y (a proper rotation, 90 or 180 degrees)."""
    return rotation_between(up, np.array([0.0, 1.0, 0.0]))


def _top_joint(smap: BoneMap) -> int | None:
    r = smap.roles
    return r.get("chest", r.get("neck", r.get("head", r.get("spine"))))


def _leg_length(pos: np.ndarray, roles: dict) -> float:
    """Mean of the two legs' thigh + shin lengths, metres."""
    return float(np.mean([np.linalg.norm(pos[roles[f"thigh_{s}"]] - pos[roles[f"shin_{s}"]])
                          + np.linalg.norm(pos[roles[f"shin_{s}"]] - pos[roles[f"foot_{s}"]]) for s in SIDES]))


def _source_frame(motion: Motion, smap: BoneMap, up_axis: str) -> _Source:
    """Forward kinematics of the source, its up axis turned to +Y, and its canonical rest pose."""
    Gs, Ps = motion.forward_kinematics()
    sh, top = smap.roles["hips"], _top_joint(smap)
    if up_axis == "auto":
        if top is None:
            raise ValueError(f"{motion.source}: cannot detect the up axis without a spine/chest/head joint; "
                             "give it (up_axis)")
        up = snap_to_axis(normalize(Ps[:, top] - Ps[:, sh]).mean(0))
        up_name = next(k for k, v in _AXES.items() if np.allclose(v, up))
    else:
        if up_axis.lower() not in _AXES:
            raise ValueError(f"up_axis must be 'auto' or one of {sorted(_AXES)}, got {up_axis!r}")
        up_name = up_axis.lower()
        up = np.array(_AXES[up_name], dtype=np.float64)
    A = _up_rotation(up)
    Gs = np.einsum("ab,fjbc->fjac", A, Gs)
    Ps = np.einsum("ab,fjb->fja", A, Ps)
    rest = motion.rest_positions()
    rest_up = snap_to_axis(rest[top] - rest[sh]) if top is not None else np.array([0.0, 1.0, 0.0])
    rest_left = rest[smap.roles["thigh_l"]] - rest[smap.roles["thigh_r"]]
    rest_left = snap_to_axis(rest_left - (rest_left @ rest_up) * rest_up)
    R_rest = frame_from(rest_up, rest_left).T            # rows: left, up, forward -> maps to X, Y, Z
    leg = _leg_length(rest, smap.roles)
    if not leg > 0:
        raise ValueError(f"{motion.source}: the source legs have zero length")
    return _Source(Gs, Ps, up_name, R_rest, rest @ R_rest.T, leg)


def _bone_alignment(r: str, k: int, c: str | None, src: _Source, target: TargetSkeleton, smap: BoneMap,
                    tmap: BoneMap, pairs: _Pairs, Q: dict[str, np.ndarray]) -> np.ndarray:
    """Q for role r (target joint k, bone ending at role c): the constant rotation taking the target's bind bone
    direction to the source's canonical rest direction. The hips use a full frame (up and left); other bones
    fix their twist by a second axis common to both rest poses (forward +Z, or up +Y for feet and toes), so a T-
    and an A-pose source give the same result; a bone without a child inherits its nearest mapped ancestor's."""
    rest_c, bp = src.rest_c, target.bind_pos
    j = pairs.src[r]
    if r == "hips":
        up_s = rest_c[pairs.src[c]] - rest_c[j] if c else np.array([0.0, 1.0, 0.0])
        up_t = bp[pairs.tgt[c]] - bp[k] if c else np.array([0.0, 1.0, 0.0])
        Fs = frame_from(up_s, rest_c[smap.roles["thigh_l"]] - rest_c[smap.roles["thigh_r"]])
        Ft = frame_from(up_t, bp[tmap.roles["thigh_l"]] - bp[tmap.roles["thigh_r"]])
        return Fs @ Ft.T
    if c is not None:
        sec = np.array([0.0, 1.0, 0.0]) if r.startswith(("foot", "toe")) else np.array([0.0, 0.0, 1.0])
        return frame_from(rest_c[pairs.src[c]] - rest_c[j], sec) @ frame_from(bp[pairs.tgt[c]] - bp[k], sec).T
    anc = target.parents[k]
    while anc >= 0 and anc not in pairs.role_of_target:
        anc = target.parents[anc]
    return Q[pairs.role_of_target[anc]] if anc >= 0 else np.eye(3)


def _transfer_rotations(src: _Source, target: TargetSkeleton, smap: BoneMap, tmap: BoneMap, pairs: _Pairs,
                        min_s: float, min_t: float) -> tuple[np.ndarray, np.ndarray]:
    """Target world rotations, joint-major (J, F, 3, 3): (source rotation relative to its canonical rest) @ Q @
    bind rotation, then a swing so each bone points exactly where the source bone points; unmapped joints stay
    at rest relative to their parent. Also returns the (J,) bool mask of joints that carry a transfer (and roots)."""
    Bw, bp = target.bind_rot, target.bind_pos
    Rb, _ = target.bind_local()
    J, F = len(target.names), src.G.shape[0]
    W = np.empty((J, F, 3, 3))              # joint-major: every W[k] is contiguous (much faster)
    Q: dict[str, np.ndarray] = {}
    for k in range(J):
        p, r = target.parents[k], pairs.role_of_target.get(k)
        if r is None:
            W[k] = Rb[k] if p < 0 else W[p] @ Rb[k]
            continue
        j = pairs.src[r]
        c = pairs.child_role(r, src.rest_c, bp, min_s, min_t)
        Q[r] = _bone_alignment(r, k, c, src, target, smap, tmap, pairs, Q)
        W0 = (src.G[:, j] @ src.R_rest.T) @ (Q[r] @ Bw[k])
        if c is not None and r != "hips":
            v_t = W0 @ (Bw[k].T @ (bp[pairs.tgt[c]] - bp[k]))       # bone vector from k's bind frame
            W0 = rotation_between(v_t, src.P[:, pairs.src[c]] - src.P[:, j]) @ W0
        W[k] = W0
    mapped = np.zeros(J, dtype=bool)
    mapped[[k for _, _, k in pairs.pairs]] = True
    mapped[target.parents < 0] = True
    return W, mapped


def same_skeleton(motion: Motion, target: TargetSkeleton) -> np.ndarray | None:
    """(J,) the source joint of each target joint when the two are one skeleton (the same joint names, each with
    the same parent: an Anny take onto an Anny rig, a clip exported from the rig itself), else None."""
    if len(motion.names) != len(target.names) or set(motion.names) != set(target.names):
        return None
    index = {n: j for j, n in enumerate(motion.names)}

    def parent_name(names, parents, j):
        return None if parents[j] < 0 else names[parents[j]]

    src = np.array([index[n] for n in target.names])
    same = all(parent_name(target.names, target.parents, k) == parent_name(motion.names, motion.parents, j)
               for k, j in enumerate(src))
    return src if same else None


def _rests_agree(src: _Source, target: TargetSkeleton, same: np.ndarray, min_s: float) -> bool:
    """Whether one skeleton's source rest (canonical) and target bind point every bone the same way, within
    ``REST_AGREEMENT_DEG`` (bodies of other proportions do; a T-pose and an A-pose do not)."""
    cos_min = np.cos(np.radians(REST_AGREEMENT_DEG))
    for k, p in enumerate(target.parents):
        if p < 0:
            continue
        vs = src.rest_c[same[k]] - src.rest_c[same[p]]
        vt = target.bind_pos[k] - target.bind_pos[p]
        ns, nt = np.linalg.norm(vs), np.linalg.norm(vt)
        if ns > min_s and nt > 1e-9 and vs @ vt < cos_min * ns * nt:
            return False
    return True


def _copy_rotations(src: _Source, target: TargetSkeleton, smap: BoneMap, tmap: BoneMap, pairs: _Pairs,
                    same: np.ndarray, fingers: bool) -> tuple[np.ndarray, np.ndarray]:
    """One skeleton on both sides: every joint's world rotation relative to its rest, carried onto the target's
    bind (joint-major (J, F, 3, 3), and every joint mapped) through the hips' rest alignment, with no swing
    correction (the joints between two roles are copied too: spine links, twist bones, metacarpals, toes).
    Without ``fingers``, the finger joints and those below them stay at rest relative to their parent."""
    Bw = target.bind_rot
    Rb, _ = target.bind_local()
    k_hips = tmap.roles["hips"]
    c = pairs.child_role("hips", src.rest_c, target.bind_pos, 0.0, 0.0)
    Q = _bone_alignment("hips", k_hips, c, src, target, smap, tmap, pairs, {})
    J = len(target.names)
    still = np.zeros(J, dtype=bool)
    if not fingers:
        finger_joints = {tmap.roles[r] for r in _FINGERS if r in tmap.roles}
        for k, p in enumerate(target.parents):
            still[k] = k in finger_joints or (p >= 0 and still[p])
    W = np.empty((J, src.G.shape[0], 3, 3))
    for k, p in enumerate(target.parents):
        if still[k]:
            W[k] = W[p] @ Rb[k]
            continue
        W[k] = (src.G[:, same[k]] @ src.R_rest.T) @ (Q @ Bw[k])
    return W, ~still | (target.parents < 0)


def _foot_points(roles: dict) -> list[int]:
    return [j for s in SIDES for j in (roles[f"foot_{s}"], roles.get(f"toe_{s}")) if j is not None]


def _root_motion(src: _Source, target: TargetSkeleton, smap: BoneMap, tmap: BoneMap, scale: float,
                 sole_s: float) -> tuple[float, np.ndarray]:
    """(source floor height, root translation (F, 3)): the source hips path scaled by the leg ratio about each
    skeleton's floor. When the hips are not the root, their ancestors keep their bind rotation, so moving the root
    moves the hips rigidly: the root translation is the hips' displacement either way."""
    Ps, sh, th = src.P, smap.roles["hips"], tmap.roles["hips"]
    floor_s = float(np.percentile(Ps[:, _foot_points(smap.roles), 1].min(axis=1), 2)) - sole_s
    bp = target.bind_pos
    sole_t = float(bp[_foot_points(tmap.roles), 1].min() - target.floor_y)
    hips_t = np.empty((Ps.shape[0], 3))
    hips_t[:, [0, 2]] = Ps[:, sh][:, [0, 2]] * scale
    hips_t[:, 1] = target.floor_y + sole_t + scale * (Ps[:, sh, 1] - floor_s - sole_s)
    return floor_s, hips_t - bp[th]


def _source_contacts(src: _Source, smap: BoneMap, floor_s: float, sole_s: float, fps: float,
                     cfg: ContactConfig) -> np.ndarray:
    """(F, 2) bool foot contacts (left, right) detected on the source."""
    contacts = np.zeros((src.P.shape[0], 2), dtype=bool)
    low = src.rest_c[_foot_points(smap.roles), 1].min() - sole_s
    for i, s in enumerate(SIDES):
        pts = [smap.roles[f"foot_{s}"]] + ([smap.roles[f"toe_{s}"]] if f"toe_{s}" in smap.roles else [])
        contacts[:, i] = detect_contacts(src.P[:, pts], src.rest_c[pts, 1] - low, floor_s, fps, src.leg, cfg)
    return contacts


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
