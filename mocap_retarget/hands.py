"""Hands on the ground in a retarget: cartwheels, handsprings, crawls, a fall broken by the hands.

The feet's cleanup (`mocap_retarget.feet`) locks planted feet; a stunt take also plants its hands, and the double's
arms, of other proportions than the performer's, then slide over the floor or sink through it. Here contacts are
found on the source's wrists (near the floor and still: `mocap_retarget.contacts.detect_contacts`), and on the
target each contact's wrist is locked where the double's wrist was on average during it, at the source wrist's
height above its floor (scaled by the retarget's leg ratio, at least ``clearance``), with short blends in and out;
outside contacts no wrist goes below ``clearance`` above the floor. A two-bone IK of the arm (upper arm, forearm,
the elbow kept in its plane; `mocap_retarget.feet.solve_limb`) reaches the goal while the hand keeps its world
rotation. Where a planted wrist is below its lock (the double's arms longer than the performer's for its legs,
the hand through the floor), the whole body first comes up by that much (`body_lift`, smoothed, before the feet's
cleanup, which may lower it again for a planted foot), so the arm keeps the performer's shape rather than folding
at the elbow. A goal out of the arm's reach leaves the arm stretched towards it.

Arrays: ``W`` joint-major world rotations (J, F, 3, 3), ``P`` positions (F, J, 3) metres, Doppel frame (+Y up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap_retarget.contacts import ContactConfig, detect_contacts
from mocap_retarget.feet import Limb, blended_locks, smooth_upper, solve_limb
from mocap_retarget.roles import SIDES, BoneMap
from mocap_retarget.skeleton import TargetSkeleton


@dataclass(frozen=True)
class HandConfig:
    height: float = 0.10          # a source wrist counts as on the ground within this many metres of its floor
    speed: float = 0.25           # ... and as still below this speed, in leg lengths per second
    min_frames_s: float = 0.04    # contacts shorter than this (seconds) are dropped, gaps shorter are filled
    clearance: float = 0.03       # the lowest a target wrist goes above the floor, metres (a palm's thickness)
    max_lift: float = 0.3         # the body comes up at most this fraction of the leg length to put a hand down


def hand_sides(smap: BoneMap, tmap: BoneMap) -> list[str]:
    """The sides whose hand the source has and whose arm (upper arm, forearm, hand) the target has."""
    need = ("upperarm", "forearm", "hand")
    return [s for s in SIDES if f"hand_{s}" in smap.roles and all(f"{r}_{s}" in tmap.roles for r in need)]


def hand_contacts(P: np.ndarray, smap: BoneMap, sides: list[str], floor: float, fps: float, leg: float,
                  cfg: HandConfig) -> np.ndarray:
    """(F, 2) bool hand contacts (left, right) on the source: P (F, Js, 3) source positions in Doppel's frame,
    floor its height, leg its leg length (metres). A side not in ``sides`` has none."""
    out = np.zeros((P.shape[0], 2), dtype=bool)
    cc = ContactConfig(height=cfg.height, speed=cfg.speed, min_frames_s=cfg.min_frames_s)
    for i, s in enumerate(SIDES):
        if s in sides:
            out[:, i] = detect_contacts(P[:, [smap.roles[f"hand_{s}"]]], np.zeros(1), floor, fps, leg, cc)
    return out


def body_lift(target: TargetSkeleton, tmap: BoneMap, Pt: np.ndarray, contacts: np.ndarray, source_height: np.ndarray,
              sides: list[str], cfg: HandConfig, fps: float, blend_s: float, leg: float) -> np.ndarray:
    """(F,) metres the whole body comes up so that a planted wrist below its lock height (the double's arms longer
    than the performer's for its legs, the hand through the floor) reaches it with the arm as the performer held
    it, smoothed, at most cfg.max_lift leg lengths; the arm IK does the rest. Zeros when no hand is planted."""
    nb = max(1, int(round(blend_s * fps)))
    need = np.zeros(Pt.shape[0])
    for i, s in enumerate(SIDES):
        if s not in sides or not contacts[:, i].any():
            continue
        arm = _arm_goal(target, tmap, Pt, contacts[:, i], source_height[:, i], s, nb, cfg)
        need = np.maximum(need, arm.weight * np.maximum(arm.goal[:, 1] - arm.ankle[:, 1], 0.0))
    return smooth_upper(np.minimum(need, cfg.max_lift * leg), nb)


def enforce_hands(target: TargetSkeleton, tmap: BoneMap, W: np.ndarray, Pt: np.ndarray, contacts: np.ndarray,
                  source_height: np.ndarray, sides: list[str], cfg: HandConfig, fps: float, blend_s: float,
                  mapped: np.ndarray) -> np.ndarray:
    """Lock planted wrists and keep wrists above the floor with two-bone arm IK (see the module docstring).

    W (J, F, 3, 3) joint-major world rotations after the feet's cleanup, Pt (F, J, 3) their positions, contacts
    (F, 2) from `hand_contacts`, source_height (F, 2) each source wrist's height above its floor times the leg
    ratio (metres). Returns the new joint-major world rotations (W itself when no arm changes)."""
    nb = max(1, int(round(blend_s * fps)))
    out = None
    Rb, _ = target.bind_local()
    zero = np.zeros(Pt.shape[0])
    for i, s in enumerate(SIDES):
        if s not in sides:
            continue
        arm = _arm_goal(target, tmap, Pt, contacts[:, i], source_height[:, i], s, nb, cfg)
        if np.abs(arm.goal - arm.ankle).max() < 1e-9:
            continue                                     # never on the ground, never below it: left as it is
        if out is None:
            out = W.copy()
        solve_limb(arm, out, W, Pt, zero, target.parents, Rb, mapped)
    return W if out is None else out


def _arm_goal(target: TargetSkeleton, tmap: BoneMap, Pt: np.ndarray, contact: np.ndarray, height: np.ndarray,
              side: str, nb: int, cfg: HandConfig) -> Limb:
    """One arm's wrist goal (F, 3): the wrist, pulled to each contact's locked place with blends of nb frames, and
    never lower than cfg.clearance above the floor."""
    ku, kf, kh = (tmap.roles[f"{r}_{side}"] for r in ("upperarm", "forearm", "hand"))
    wrist = Pt[:, kh].copy()

    def place(a: int, b: int) -> np.ndarray:
        p = wrist[a:b].mean(0)
        p[1] = target.floor_y + max(cfg.clearance, float(height[a:b].mean()))
        return p

    goal, weight = blended_locks(wrist, contact, nb, place)
    goal[:, 1] = np.maximum(goal[:, 1], target.floor_y + cfg.clearance)
    bp = target.bind_pos
    return Limb(ku, kf, kh, wrist, goal, float(np.linalg.norm(bp[kf] - bp[ku])), float(np.linalg.norm(bp[kh] - bp[kf])),
                weight)
