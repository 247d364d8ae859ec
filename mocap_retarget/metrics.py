"""Quality figures of a retarget: limb-direction similarity, end-effector offsets, foot skate, ground
penetration, root path.

End-effector error: distance between a hand/foot/head's offset from the hips on the target and the
source's offset scaled by the leg-length ratio (cm): it measures proportion differences (arm length,
shoulder width) as much as retarget error, so it is reported, not optimised.

All lengths in cm, speeds in cm/s; source figures are scaled by the retarget's leg-length ratio so
they compare with the target's.
"""

from __future__ import annotations

import numpy as np

from mocap_retarget.retarget import RetargetResult
from mocap_retarget.roles import BONE_CHILD, SIDES
from mocap_retarget.skeleton import TargetSkeleton

MIN_BONE_LENGTH_M = 1e-3   # bones shorter than this (zero-length links, float noise of a re-export) have no direction


def _horizontal_speed(p: np.ndarray, fps: float) -> np.ndarray:
    """p (F, 3) -> (F-1,) horizontal speed between consecutive frames (units per second)."""
    return np.linalg.norm(np.diff(p[:, [0, 2]], axis=0), axis=-1) * fps


def direction_cosines(res: RetargetResult, Pt: np.ndarray) -> dict[str, np.ndarray]:
    """role -> (F,) cosine between the source and target bone directions, for every transferred bone
    whose child role is transferred too."""
    src = {r: j for r, j, _ in res.pairs}
    tgt = {r: k for r, _, k in res.pairs}
    out = {}
    for r in src:
        c = BONE_CHILD.get(r)
        if c not in src:
            continue
        ds = res.source_positions[:, src[c]] - res.source_positions[:, src[r]]
        dt = Pt[:, tgt[c]] - Pt[:, tgt[r]]
        ns, nt = np.linalg.norm(ds, axis=-1), np.linalg.norm(dt, axis=-1)
        ok = (ns > MIN_BONE_LENGTH_M) & (nt > MIN_BONE_LENGTH_M)
        if not ok.any():
            continue
        out[r] = np.sum(ds * dt, axis=-1)[ok] / (ns * nt)[ok]
    return out


def compute_metrics(res: RetargetResult, target: TargetSkeleton) -> dict:
    """The metrics dict written to metrics.json (see module doc). Every value is a finite number, a string,
    None or a dict of those (valid JSON)."""
    s = res.scale
    m: dict = {"frames": int(res.animation.num_frames), "fps": round(float(res.animation.fps), 4),
               "scale": round(float(s), 5), "source_up_axis": res.up_axis,
               "transferred_bones": int(res.copied_joints) if res.copied_joints else len(res.pairs),
               "same_skeleton": bool(res.copied_joints)}
    m.update(_limb_metrics(res))
    m.update(_end_effector_metrics(res))
    m.update(_feet_metrics(res, target))
    m.update(_hands_metrics(res, target))
    m.update(_root_metrics(res))
    return _finite(m)


def _limb_metrics(res: RetargetResult) -> dict:
    cos_raw = direction_cosines(res, res.target_positions_raw)
    cos = direction_cosines(res, res.target_positions)
    allc = np.concatenate(list(cos.values())) if cos else np.array([np.nan])
    allr = np.concatenate(list(cos_raw.values())) if cos_raw else np.array([np.nan])
    return {"limb_cosine_mean": round(float(allc.mean()), 5), "limb_cosine_min": round(float(allc.min()), 5),
            "limb_cosine_mean_before_cleanup": round(float(allr.mean()), 5),
            "limb_cosine_per_bone": {r: round(float(v.mean()), 5) for r, v in cos.items()}}


def _end_effector_metrics(res: RetargetResult) -> dict:
    """Hands, feet and head relative to the hips, against the source's scaled by the leg ratio (cm)."""
    smap, tmap = res.source_map.roles, res.target_map.roles
    ee = {}
    for r in ("hand_l", "hand_r", "foot_l", "foot_r", "head"):
        if r in smap and r in tmap:
            ds = res.source_positions[:, smap[r]] - res.source_positions[:, smap["hips"]]
            dt = res.target_positions[:, tmap[r]] - res.target_positions[:, tmap["hips"]]
            ee[r] = round(float(np.linalg.norm(dt - res.scale * ds, axis=-1).mean() * 100), 3)
    return {"end_effector_error_cm": ee,
            "end_effector_error_mean_cm": round(float(np.mean(list(ee.values()))), 3) if ee else None}


def _feet_metrics(res: RetargetResult, target: TargetSkeleton) -> dict:
    """Per foot: contact fraction, skate during contacts (cm/s) and ground penetration (cm), before and after
    the cleanup; and their means / maxima over both feet."""
    smap, tmap, fps = res.source_map.roles, res.target_map.roles, res.animation.fps
    sole_raw, sole = res.sole_heights_raw, res.sole_heights
    feet = {}
    for i, side in enumerate(SIDES):
        c = res.contacts[:-1, i] & res.contacts[1:, i]      # frame pairs inside a contact
        sj, tk = smap[f"foot_{side}"], tmap[f"foot_{side}"]
        feet[side] = {
            "contact_fraction": round(float(res.contacts[:, i].mean()), 4),
            "skate_source_scaled_cm_s": _mean_cm(_horizontal_speed(res.source_positions[:, sj], fps) * res.scale, c),
            "skate_before_cleanup_cm_s": _mean_cm(_horizontal_speed(res.target_positions_raw[:, tk], fps), c),
            "skate_after_cleanup_cm_s": _mean_cm(_horizontal_speed(res.target_positions[:, tk], fps), c),
            "penetration_max_before_cm": round(float(max(0.0, -sole_raw[:, i].min()) * 100), 3),
            "penetration_max_after_cm": round(float(max(0.0, -sole[:, i].min()) * 100), 3),
            "penetration_mean_before_cm": round(float(np.maximum(-sole_raw[:, i], 0).mean() * 100), 3),
            "penetration_mean_after_cm": round(float(np.maximum(-sole[:, i], 0).mean() * 100), 3),
        }
    m: dict = {"feet": feet}
    for key in ("skate_source_scaled_cm_s", "skate_before_cleanup_cm_s", "skate_after_cleanup_cm_s"):
        vals = [feet[sd][key] for sd in SIDES if feet[sd][key] is not None]
        m[key] = round(float(np.mean(vals)), 3) if vals else None
    for key in ("penetration_max_before_cm", "penetration_max_after_cm"):
        m[key] = max(feet[sd][key] for sd in SIDES)
    return m


def _hands_metrics(res: RetargetResult, target: TargetSkeleton) -> dict:
    """Per hand the source puts on the ground (`mocap_retarget.hands`): contact fraction, the wrist's skate during
    contacts (cm/s) and how far it goes below the floor (cm), before and after the cleanup. {} when no hand is."""
    if res.hand_contacts is None or not res.hand_contacts.any():
        return {}
    smap, tmap, fps = res.source_map.roles, res.target_map.roles, res.animation.fps
    hands = {}
    for i, side in enumerate(SIDES):
        if side not in res.hand_sides or not res.hand_contacts[:, i].any():
            continue
        c = res.hand_contacts[:-1, i] & res.hand_contacts[1:, i]
        sj, tk = smap[f"hand_{side}"], tmap[f"hand_{side}"]
        below_raw = target.floor_y - res.target_positions_raw[:, tk, 1]
        below = target.floor_y - res.target_positions[:, tk, 1]
        hands[side] = {
            "contact_fraction": round(float(res.hand_contacts[:, i].mean()), 4),
            "skate_source_scaled_cm_s": _mean_cm(_horizontal_speed(res.source_positions[:, sj], fps) * res.scale, c),
            "skate_before_cleanup_cm_s": _mean_cm(_horizontal_speed(res.target_positions_raw[:, tk], fps), c),
            "skate_after_cleanup_cm_s": _mean_cm(_horizontal_speed(res.target_positions[:, tk], fps), c),
            "wrist_below_floor_max_before_cm": round(float(max(0.0, below_raw.max()) * 100), 3),
            "wrist_below_floor_max_after_cm": round(float(max(0.0, below.max()) * 100), 3),
        }
    return {"hands": hands}


def _root_metrics(res: RetargetResult) -> dict:
    """Root path (target hips vs the scaled source hips, horizontal), heights' correlation, facing cosine."""
    smap, tmap, s = res.source_map.roles, res.target_map.roles, res.scale
    ps = res.source_positions[:, smap["hips"]]
    pt = res.target_positions[:, tmap["hips"]]
    err = np.sum((pt[:, [0, 2]] - s * ps[:, [0, 2]]) ** 2, -1)
    m: dict = {"root_path_rms_cm": round(float(np.sqrt(np.mean(err)) * 100), 4)}
    src_len = float(np.linalg.norm(np.diff(ps[:, [0, 2]], axis=0), axis=-1).sum())
    tgt_len = float(np.linalg.norm(np.diff(pt[:, [0, 2]], axis=0), axis=-1).sum())
    m["root_path_length_m"] = {"source": round(src_len, 4), "target": round(tgt_len, 4),
                               "ratio": round(tgt_len / src_len, 5) if src_len > 1e-9 else None}
    if ps[:, 1].std() > 1e-9 and pt[:, 1].std() > 1e-9:
        m["root_height_correlation"] = round(float(np.corrcoef(ps[:, 1], pt[:, 1])[0, 1]), 5)
    # facing: horizontal forward of the hips (left x up), source vs target
    up = np.array([0.0, 1.0, 0.0])
    fs = np.cross(res.source_positions[:, smap["thigh_l"]] - res.source_positions[:, smap["thigh_r"]], up)
    ft = np.cross(res.target_positions[:, tmap["thigh_l"]] - res.target_positions[:, tmap["thigh_r"]], up)
    fs, ft = fs[:, [0, 2]], ft[:, [0, 2]]
    ok = (np.linalg.norm(fs, axis=-1) > 1e-9) & (np.linalg.norm(ft, axis=-1) > 1e-9)
    m["facing_cosine_mean"] = round(float(np.mean(np.sum(fs[ok] * ft[ok], -1) / (np.linalg.norm(fs[ok], axis=-1)
                                                                             * np.linalg.norm(ft[ok], axis=-1)))), 5)
    return m


def _finite(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _mean_cm(v: np.ndarray, mask: np.ndarray) -> float | None:
    return round(float(v[mask].mean() * 100), 3) if mask.any() else None
