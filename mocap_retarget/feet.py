"""Feet of a retarget: sole points and heights, the source's sole offset, and the cleanup that locks planted
ankles, keeps soles out of the floor and solves two-bone leg IK.

Arrays: ``W`` joint-major world rotations (J, F, 3, 3) (every W[k] contiguous), ``P`` positions (F, J, 3) metres,
Doppel frame (+Y up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.contacts import runs
from mocap_retarget.roles import SIDES, BoneMap
from mocap_retarget.rotations import rotation_between
from mocap_retarget.skeleton import TargetSkeleton


@dataclass(frozen=True)
class FootConfig:
    blend_s: float = 0.1             # seconds to blend into and out of a foot lock
    reach_fraction: float = 0.995    # a leg goal must be within this fraction of the leg's length (no full stretch)
    max_hips_drop: float = 0.15      # the hips come down at most this fraction of the leg length to reach a goal


@dataclass
class Limb:
    """A two-bone chain to solve: a leg (thigh, shin, foot) or an arm (upper arm, forearm, hand)."""

    thigh: int              # the upper bone's joint (thigh, upper arm)
    shin: int               # the lower bone's joint (shin, forearm)
    foot: int               # the end joint (foot, hand): keeps its world rotation
    ankle: np.ndarray       # (F, 3) the end joint before cleanup
    goal: np.ndarray        # (F, 3) where the end joint should be
    l1: float               # upper bone length, metres
    l2: float               # lower bone length, metres
    weight: np.ndarray      # (F,) lock weight in [0, 1]


def source_sole_offset(motion: Motion, smap: BoneMap, R_rest: np.ndarray) -> float:
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
    """Wt (F, J, 3, 3) world rotations, Pt (F, J, 3) -> (F, 2) height above the floor of the lowest sole point of
    each foot (negative = below the floor), metres."""
    pts = foot_sole_points(target, tmap)
    out = np.full((Wt.shape[0], 2), np.inf)
    for i, s in enumerate(SIDES):
        for k, off in pts[s]:
            y = Pt[:, k, 1] + (Wt[:, k] @ off)[:, 1] - target.floor_y
            out[:, i] = np.minimum(out[:, i], y)
    return out


def enforce_feet(target: TargetSkeleton, tmap: BoneMap, Wt: np.ndarray, Pt: np.ndarray, contacts: np.ndarray,
                 cfg: FootConfig, fps: float, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lock planted ankles, lift feet out of the floor, lower the hips where a goal is out of the leg's
    reach, and solve two-bone IK (thigh, shin) with the foot keeping its world orientation.

    Wt: joint-major world rotations (J, F, 3, 3); Pt (F, J, 3); contacts (F, 2) bool; mapped (J,) bool (joints
    whose rotation was transferred). Returns the new joint-major world rotations and the hips' drop (F,) metres
    (>= 0, smoothed).
    """
    nb = max(1, int(round(cfg.blend_s * fps)))
    soles = sole_heights(Wt.transpose(1, 0, 2, 3), Pt, target, tmap)
    legs = [_leg_goal(target, tmap, Pt, contacts[:, i], soles[:, i], s, nb) for i, s in enumerate(SIDES)]
    drop = _hips_drop(legs, Pt, cfg, nb)
    W = Wt.copy()
    Rb, _ = target.bind_local()
    for i, leg in enumerate(legs):
        # outside locks, lift a foot that the lowered hips (or the source) put into the floor
        leg.goal[:, 1] -= np.minimum(soles[:, i] - drop, 0.0) * (1.0 - leg.weight)
        # the foot keeps its world rotation, so an ankle at or above this height keeps every sole point out of the
        # floor: in a lock (a rolling foot) and in its blends, where the lock's height meets the raw ankle's
        leg.goal[:, 1] = np.maximum(leg.goal[:, 1], leg.ankle[:, 1] - soles[:, i])
        solve_limb(leg, W, Wt, Pt, drop, target.parents, Rb, mapped)
    return W, drop


def _leg_goal(target: TargetSkeleton, tmap: BoneMap, Pt: np.ndarray, contact: np.ndarray, sole: np.ndarray,
              side: str, nb: int) -> Limb:
    """One leg's ankle goal (F, 3): the ankle, pulled to each contact's locked position with blends of nb
    frames; a planted foot's lowest sole point stays on or above the floor (no sinking)."""
    kt, ks, kf = tmap.roles[f"thigh_{side}"], tmap.roles[f"shin_{side}"], tmap.roles[f"foot_{side}"]
    ankle = Pt[:, kf].copy()

    def place(a: int, b: int) -> np.ndarray:
        p = ankle[a:b].mean(0)
        p[1] = max(p[1], ankle[a:b, 1].mean() - sole[a:b].mean(), ankle[a:b, 1].max() - sole[a:b].max())
        return p

    goal, weight = blended_locks(ankle, contact, nb, place)
    bp = target.bind_pos
    return Limb(kt, ks, kf, ankle, goal, float(np.linalg.norm(bp[ks] - bp[kt])),
                float(np.linalg.norm(bp[kf] - bp[ks])), weight)


def blended_locks(end: np.ndarray, contact: np.ndarray, nb: int, place) -> tuple[np.ndarray, np.ndarray]:
    """An end joint's goal (F, 3) and lock weight (F,): ``end`` (F, 3) pulled to ``place(a, b)`` (3,) over each
    contact run [a, b) of ``contact`` (F,) bool, blending in and out over nb frames on either side (a frame between
    two runs takes the nearer lock)."""
    F = end.shape[0]
    weight = np.zeros(F)
    lock = np.zeros((F, 3))
    for a, b in runs(contact):
        p = place(a, b)
        for f in range(max(0, a - nb), min(F, b + nb)):
            w = 1.0 if a <= f < b else (1.0 - (a - f) / (nb + 1) if f < a else 1.0 - (f - b + 1) / (nb + 1))
            if w > weight[f]:
                weight[f], lock[f] = w, p
    return end * (1 - weight[:, None]) + lock * weight[:, None], weight


def _hips_drop(legs: list[Limb], Pt: np.ndarray, cfg: FootConfig, nb: int) -> np.ndarray:
    """(F,) how far the hips must come down for every goal to be within cfg.reach_fraction of the leg's reach
    (at most cfg.max_hips_drop leg lengths), smoothed."""
    need = np.zeros(Pt.shape[0])
    for leg in legs:
        d = leg.goal - Pt[:, leg.thigh]
        reach = cfg.reach_fraction * (leg.l1 + leg.l2)
        horiz = np.linalg.norm(d[:, [0, 2]], axis=1)
        vert = np.sqrt(np.maximum(reach ** 2 - horiz ** 2, 0.0))
        need = np.maximum(need, np.clip(-d[:, 1] - vert, 0.0, cfg.max_hips_drop * (leg.l1 + leg.l2)))
    return smooth_upper(need, nb)


def solve_limb(leg: Limb, W: np.ndarray, Wt: np.ndarray, Pt: np.ndarray, drop: np.ndarray, parents: np.ndarray,
               Rb: np.ndarray, mapped: np.ndarray) -> None:
    """Two-bone IK of one limb (a leg, or an arm: `mocap_retarget.hands`), written into W (joint-major), the whole
    limb first moved down by ``drop`` (F,) metres (the hips' drop; zeros for an arm). The rest of the upper bone's
    subtree follows its parent (keeping its local rotation); the end joint and everything below it keep their world
    rotations."""
    kt, ks, kf = leg.thigh, leg.shin, leg.foot
    down = drop[:, None] * np.array([0.0, 1.0, 0.0])
    hip, knee, ank = Pt[:, kt] - down, Pt[:, ks] - down, leg.ankle - down
    knee_new, ankle_new = two_bone_ik(hip, knee, ank, leg.goal, leg.l1, leg.l2)
    dT = rotation_between(knee - hip, knee_new - hip)                                 # thigh swing
    dS = rotation_between((dT @ (ank - knee)[..., None])[..., 0], ankle_new - knee_new)  # shin swing
    W[kt] = dT @ Wt[kt]
    W[ks] = dS @ dT @ Wt[ks]
    in_leg = subtree_mask(parents, kt) & ~subtree_mask(parents, kf)
    for k in np.flatnonzero(in_leg):
        if k in (kt, ks):
            continue
        p = parents[k]
        W[k] = W[p] @ Rb[k] if not mapped[k] else W[p] @ (np.swapaxes(Wt[p], -1, -2) @ Wt[k])


def smooth_upper(x: np.ndarray, n: int) -> np.ndarray:
    """A smooth curve >= x (F,): running maximum over +-n frames, then a moving average over +-n/2."""
    F = len(x)
    if not x.any():
        return x.copy()
    pad = np.pad(x, n, mode="edge")
    runmax = np.lib.stride_tricks.sliding_window_view(pad, 2 * n + 1).max(axis=1)       # (F,)
    h = max(1, n // 2)
    padm = np.pad(runmax, h, mode="edge")
    return np.convolve(padm, np.ones(2 * h + 1) / (2 * h + 1), mode="valid")[:F]


def subtree_mask(parents: np.ndarray, top: int) -> np.ndarray:
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
