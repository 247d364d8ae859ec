"""Solving a labelled full-body marker take (`mocap_retarget.marker_set`) to a skeleton: what Vicon Shogun / Nexus,
Motive or MotionBuilder do before a take reaches a retargeter, done the way Plug-in Gait does it.

1. A marker's short gaps (up to 0.2 s) are filled linearly.
2. Per frame, the joint centres of Plug-in Gait (`mocap_retarget.plugin_gait`): hips by Davis's equations with a
   VSK's leg length, else Harrington's regression; knees, ankles, shoulders and elbows by the chord function;
   wrists towards the palm; from the performer's measurements (`SubjectSizes`: adult defaults, or a Vicon VSK's).
3. Per frame, each segment's rotation from the reference frame (the first frame that sees every required marker):
   pelvis, thorax and head as rigid marker clusters (Kabsch, on the markers seen in that frame); the limbs and feet
   from their bone (one joint centre to the next) turned about by a marker fixed on the bone (the knee, ankle and
   elbow markers on their epicondyles and malleolus, the wrist markers across the wrist, the fifth metatarsal
   marker where there is one, else the ankle's axis as Plug-in Gait's foot does). A frame a segment cannot
   be seen in is interpolated from its neighbours (rotations slerped).
4. The skeleton: Hips, Spine, Chest, Neck, Head, Left/Right Shoulder, Arm, ForeArm, Hand, UpLeg, Leg, Foot,
   ToeBase, each joint at its centre every frame: the Spine at the pelvis markers' centre turning halfway between
   the pelvis and the thorax, the Chest at the lower thorax (T10 / STRN) along the thorax's own axis to the Neck.
   Its rest pose is a T-pose of the performer's own bone lengths (each segment's reference-frame pose turned so
   its bone lies on the T-pose's axis, its twist set by the body's forward at the reference frame; the feet's by
   up), so the retargeter's rest alignment sees the pose it expects.

Everything is in Doppel's frame (metres, +Y up) on input and output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mocap_retarget import plugin_gait as pig
from mocap_retarget.bvh import Motion
from mocap_retarget.marker_set import REQUIRED, canonical_labels, explain_markers, missing_required, performers
from mocap_retarget.plugin_gait import SubjectSizes
from mocap_retarget.rotations import normalize
from mocap_retarget.world_motion import ClipError, motion_from_world

__all__ = ["SubjectSizes", "fill_gaps", "kabsch_track", "solve_markers"]

MAX_FILL_S = 0.2            # a marker's gap up to this long is filled linearly


# joint -> (parent, the segment whose rotation it takes)
JOINTS: dict[str, tuple[str | None, str]] = {
    "Hips": (None, "pelvis"), "Spine": ("Hips", "lumbar"), "Chest": ("Spine", "thorax"),
    "Neck": ("Chest", "head"), "Head": ("Neck", "head"),
    **{f"{S}Shoulder": ("Chest", "thorax") for S in ("Left", "Right")},
    **{f"{S}Arm": (f"{S}Shoulder", f"upperarm_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}ForeArm": (f"{S}Arm", f"forearm_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}Hand": (f"{S}ForeArm", f"hand_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}UpLeg": ("Hips", f"thigh_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}Leg": (f"{S}UpLeg", f"shank_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}Foot": (f"{S}Leg", f"foot_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
    **{f"{S}ToeBase": (f"{S}Foot", f"foot_{s}") for S, s in (("Left", "l"), ("Right", "r"))},
}
# joint -> (the end of its bone: a joint or "<joint>.end", its T-pose axis, the hint fixing its twist: "forward" of
# the pelvis, thorax or head, or the pelvis's "up" for the feet)
BONES: dict[str, tuple[str, tuple[int, int, int], str]] = {
    "Hips": ("Spine", (0, 1, 0), "pelvis forward"), "Spine": ("Chest", (0, 1, 0), "pelvis forward"),
    "Chest": ("Neck", (0, 1, 0), "thorax forward"),
    "Neck": ("Head", (0, 1, 0), "head forward"), "Head": ("Head.end", (0, 1, 0), "head forward"),
}
for _S, _x in (("Left", 1), ("Right", -1)):
    BONES |= {f"{_S}Shoulder": (f"{_S}Arm", (_x, 0, 0), "thorax forward"),
              f"{_S}Arm": (f"{_S}ForeArm", (_x, 0, 0), "thorax forward"),
              f"{_S}ForeArm": (f"{_S}Hand", (_x, 0, 0), "thorax forward"),
              f"{_S}Hand": (f"{_S}Hand.end", (_x, 0, 0), "thorax forward"),
              f"{_S}UpLeg": (f"{_S}Leg", (0, -1, 0), "pelvis forward"),
              f"{_S}Leg": (f"{_S}Foot", (0, -1, 0), "pelvis forward"),
              f"{_S}Foot": (f"{_S}ToeBase", (0, 0, 1), "pelvis up"),
              f"{_S}ToeBase": (f"{_S}ToeBase.end", (0, 0, 1), "pelvis up")}


@dataclass
class Rigid:
    """A segment's motion from the reference frame: x_f = R[f] @ x_ref + t[f]; R (F, 3, 3), t (F, 3)."""

    R: np.ndarray
    t: np.ndarray


def fill_gaps(X: np.ndarray, max_frames: int) -> np.ndarray:
    """X (F, M, 3) with NaN where a marker is unseen -> a copy with each gap of at most ``max_frames`` frames between
    two seen frames filled linearly (longer gaps and the ends stay NaN)."""
    X = X.copy()
    F = X.shape[0]
    idx = np.arange(F)
    for m in range(X.shape[1]):
        seen = np.isfinite(X[:, m]).all(axis=1)
        if seen.all() or seen.sum() < 2:
            continue
        s = idx[seen]
        prev = np.maximum.accumulate(np.where(seen, idx, -1))
        nxt = np.minimum.accumulate(np.where(seen, idx, F)[::-1])[::-1]
        gap = ~seen & (prev >= 0) & (nxt < F) & (nxt - prev - 1 <= max_frames)
        for k in range(3):
            X[gap, m, k] = np.interp(idx[gap], s, X[seen, m, k])
    return X


OFF_CLUSTER_M = 0.02        # a cluster marker this far from its cluster's rigid fit is left out of that frame's fit


def _kabsch(P_ref: np.ndarray, Pz: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the rotation R (F, 3, 3) and translation t (F, 3) taking the weighted points P_ref (n, 3) best onto
    Pz (F, n, 3) (weights w (F, n), 0 or 1)."""
    cnt = np.maximum(w.sum(axis=1), 1)[:, None]
    c_ref = (w @ P_ref) / cnt                                                 # (F, 3)
    c = np.einsum("fn,fnk->fk", w, Pz) / cnt
    H = np.einsum("fn,fni,fnj->fij", w, P_ref[None] - c_ref[:, None], Pz - c[:, None])
    U, _, Vt = np.linalg.svd(H)
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = np.sign(np.linalg.det(np.swapaxes(Vt, 1, 2) @ np.swapaxes(U, 1, 2)))
    R = np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)
    return R, c - np.einsum("fij,fj->fi", R, c_ref)


def kabsch_track(P_ref: np.ndarray, P: np.ndarray, source: str, segment: str,
                 reject_m: float | None = OFF_CLUSTER_M) -> Rigid:
    """P_ref (n, 3) a segment's points at the reference frame, P (F, n, 3) per frame (NaN: unseen) -> its Rigid
    motion; frames with fewer than three points seen are interpolated (rotations slerped) from the others.

    With ``reject_m``, a rigid cluster is fitted robustly: in a frame whose worst marker is more than reject_m from
    the fit (a swapped or slipped marker), that marker is left out and the frame refitted, while three remain; the
    cluster's shape is then the take's median one, and the motion is re-expressed from the reference frame."""
    w = np.isfinite(P).all(axis=2).astype(np.float64)                      # (F, n)
    Pz = np.nan_to_num(P)
    ok = w.sum(axis=1) >= 3
    if not ok.any():
        raise ClipError(f"{source}: the {segment.replace('_', ' ')} is never seen by three of its markers")
    R, t = _kabsch(P_ref, Pz, w)
    if reject_m is not None and P.shape[1] > 3:
        shape = P_ref
        for _ in range(2):
            for _ in range(P.shape[1] - 3):
                r = np.where(w > 0, np.linalg.norm(Pz - (np.einsum("fij,nj->fni", R, shape) + t[:, None]), axis=-1),
                             -1.0)
                bad = (r.max(axis=1) > reject_m) & (w.sum(axis=1) > 3)
                if not bad.any():
                    break
                w[bad, r[bad].argmax(axis=1)] = 0.0
                R[bad], t[bad] = _kabsch(shape, Pz[bad], w[bad])
            local = np.einsum("fji,fnj->fni", R, Pz - t[:, None])
            shape = np.nanmedian(np.where(w[..., None] > 0, local, np.nan), axis=0)
            R, t = _kabsch(shape, Pz, w)
        valid = np.isfinite(P_ref).all(axis=1)[None].astype(np.float64)
        Q, q = _kabsch(np.nan_to_num(P_ref), shape[None], valid)             # the reference's points -> the shape
        R, t = R @ Q[0], np.einsum("fij,j->fi", R, q[0]) + t
    if not ok.all():
        R, t = _interpolate(R, t, ok)
    return Rigid(R, t)


def _interpolate(R: np.ndarray, t: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid motions at the frames not ``ok`` from those that are: rotations slerped, translations linear, the
    ends held."""
    frames = np.arange(len(R))
    good = frames[ok]
    if len(good) == 1:
        return np.repeat(R[ok], len(R), axis=0), np.repeat(t[ok], len(R), axis=0)
    times = np.clip(frames, good[0], good[-1])
    R = Slerp(good, Rotation.from_matrix(R[ok]))(times).as_matrix()
    t = np.stack([np.interp(frames, good, t[ok, k]) for k in range(3)], axis=1)
    return R, t


def frame_of(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frames with columns (axis, hint made perpendicular to axis, their cross product)."""
    a = normalize(axis)
    h = normalize(hint - np.sum(hint * a, axis=-1, keepdims=True) * a)
    return np.stack([a, h, np.cross(a, h)], axis=-1)


def _fill_path(x: np.ndarray) -> np.ndarray:
    """(F, 3) with NaN frames -> linearly interpolated between the finite ones (the ends held)."""
    ok = np.isfinite(x).all(axis=1)
    if ok.all() or not ok.any():
        return x
    f = np.arange(len(x))
    return np.stack([np.interp(f, f[ok], x[ok, k]) for k in range(3)], axis=1)


def centre_paths(mk: dict[str, np.ndarray], sizes: dict[str, SubjectSizes]) -> dict[str, np.ndarray]:
    """Every joint's centre and bone end ("<joint>.end") per frame, (F, 3) metres, NaN where its markers are unseen;
    ``mk``: marker -> (F, 3); ``sizes``: side ("L", "R") -> the performer's measurements."""
    head = np.mean([mk[k] for k in ("LFHD", "RFHD", "LBHD", "RBHD")], axis=0)
    davis = sizes["L"].leg_length and sizes["R"].leg_length
    hips = dict(zip("LR", pig.davis_hips(mk, sizes) if davis else pig.harrington_hips(mk), strict=True))
    up = pig.pelvis_axes(mk)["up"]
    p = {"Hips": (hips["L"] + hips["R"]) / 2, "Spine": np.mean([mk[k] for k in ("LASI", "RASI", "LPSI", "RPSI")], 0),
         "Chest": (mk["T10"] + mk["STRN"]) / 2,
         "Neck": (mk["C7"] + mk["CLAV"]) / 2, "Head": head, "Head.end": head + 0.1 * pig.head_axes(mk)["up"]}
    for s, S in (("L", "Left"), ("R", "Right")):
        knee = pig.knee_centre(hips[s], mk[s + "THI"], mk[s + "KNE"], sizes[s])
        ankle = pig.ankle_centre(knee, mk[s + "TIB"], mk[s + "ANK"], sizes[s])
        toe_dir = mk[s + "TOE"] - ankle
        toe_dir = normalize(toe_dir - np.sum(toe_dir * up, axis=-1, keepdims=True) * up)
        shoulder = pig.shoulder_centre(mk, s, sizes[s])
        elbow = pig.elbow_centre(shoulder, mk[s + "ELB"], (mk[s + "WRA"] + mk[s + "WRB"]) / 2, s, sizes[s])
        p |= {f"{S}UpLeg": hips[s], f"{S}Leg": knee, f"{S}Foot": ankle, f"{S}ToeBase": mk[s + "TOE"],
              f"{S}ToeBase.end": mk[s + "TOE"] + 0.04 * toe_dir, f"{S}Shoulder": p["Neck"], f"{S}Arm": shoulder,
              f"{S}ForeArm": elbow, f"{S}Hand": pig.wrist_centre(elbow, mk[s + "WRA"], mk[s + "WRB"], s, sizes[s]),
              f"{S}Hand.end": mk[s + "FIN"]}
    return p


def vector_rotations(bone: np.ndarray, hint: np.ndarray, ref: int, source: str, segment: str) -> np.ndarray:
    """(F, 3, 3) a limb's rotation from the reference frame: its frame (bone, hint made perpendicular) at each frame
    times its frame at the reference's transpose; frames where it is unseen interpolated."""
    fr = frame_of(bone, hint)
    R = fr @ np.swapaxes(fr[ref], -1, -2)
    ok = np.isfinite(R).all(axis=(1, 2))
    if not ok.any():
        raise ClipError(f"{source}: the {segment.replace('_', ' ')} is never seen")
    if not ok.all():
        R, _ = _interpolate(R, np.zeros((len(R), 3)), ok)
    return R


def halfway(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(F, 3, 3) the rotations halfway along the shortest arc from A to B (F, 3, 3), frame by frame."""
    rel = Rotation.from_matrix(np.swapaxes(A, -1, -2) @ B).as_rotvec()
    return A @ Rotation.from_rotvec(rel / 2).as_matrix()


CLUSTERS = {"pelvis": ("LASI", "RASI", "LPSI", "RPSI"), "thorax": ("C7", "T10", "CLAV", "STRN", "RBAK"),
            "head": ("LFHD", "RFHD", "LBHD", "RBHD")}


def track_clusters(mk: dict[str, np.ndarray], ref: int, source: str) -> dict[str, tuple[np.ndarray, Rigid]]:
    """Each rigid cluster's markers (F, n, 3) (optional ones unseen at the reference left out) and its robust
    motion (`kabsch_track`)."""
    out = {}
    for seg, names in CLUSTERS.items():
        P = np.stack([mk[n] for n in names if n in mk and np.isfinite(mk[n][ref]).all()], axis=1)
        out[seg] = (P, kabsch_track(P[ref], P, source, seg))
    return out


def cluster_residuals(clusters: dict[str, tuple[np.ndarray, Rigid]]) -> dict[str, np.ndarray]:
    """Each cluster's markers' distance (F, n) from the take's median shape of the cluster carried by its robust
    rigid fit (`track_clusters`), metres (a marker left out of a frame's fit shows in full; NaN unseen)."""
    out = {}
    for seg, (P, rigid) in clusters.items():
        shape = np.nanmedian(np.einsum("fji,fnj->fni", rigid.R, P - rigid.t[:, None]), axis=0)
        out[seg] = np.linalg.norm(P - (np.einsum("fij,nj->fni", rigid.R, shape) + rigid.t[:, None]), axis=-1)
    return out


def segment_rotations(mk: dict[str, np.ndarray], p: dict[str, np.ndarray], ref: int, source: str,
                      clusters: dict[str, tuple[np.ndarray, Rigid]]) -> dict[str, np.ndarray]:
    """Every segment's rotation (F, 3, 3) from the reference frame: pelvis, thorax and head from their rigid marker
    clusters (`track_clusters`), the limbs and feet from their bones."""
    R = {seg: rigid.R for seg, (_, rigid) in clusters.items()}
    R["lumbar"] = halfway(R["pelvis"], R["thorax"])
    for s, S in (("L", "Left"), ("R", "Right")):
        lo, J = s.lower(), (lambda j, S=S: p[f"{S}{j}"])
        radial = mk[s + "WRA"] - mk[s + "WRB"]
        # the foot's own lateral marker when there is one (CMU's MT5), else Plug-in Gait's: the shank's
        lateral = mk[s + "MT5"] - mk[s + "TOE"] if s + "MT5" in mk else mk[s + "ANK"] - J("Foot")
        R |= {f"foot_{lo}": vector_rotations(J("ToeBase") - J("Foot"), lateral, ref, source, "foot"),
              f"thigh_{lo}": vector_rotations(J("Leg") - J("UpLeg"), mk[s + "KNE"] - J("Leg"), ref, source, "thigh"),
              f"shank_{lo}": vector_rotations(J("Foot") - J("Leg"), mk[s + "ANK"] - J("Foot"), ref, source, "shank"),
              f"upperarm_{lo}": vector_rotations(J("ForeArm") - J("Arm"), mk[s + "ELB"] - J("ForeArm"), ref, source,
                                                 "upper arm"),
              f"forearm_{lo}": vector_rotations(J("Hand") - J("ForeArm"), radial, ref, source, "forearm"),
              f"hand_{lo}": vector_rotations(J("Hand.end") - J("Hand"), radial, ref, source, "hand")}
    return R


def reference_frame(mk: dict[str, np.ndarray], source: str) -> int:
    """The first frame that sees every marker of the set the file has (after gap filling)."""
    seen = np.stack([np.isfinite(mk[n]).all(axis=1) for n in REQUIRED], axis=1).all(axis=1)
    if not seen.any():
        worst = min(REQUIRED, key=lambda n: np.isfinite(mk[n]).all(axis=1).sum())
        raise ClipError(f"{source}: no frame sees every marker of the set at once (e.g. {worst} is seen in "
                        f"{int(np.isfinite(mk[worst]).all(axis=1).sum())} frames)")
    return int(np.argmax(seen))


def solve_markers(X: np.ndarray, labels: list[str], fps: float, source: str,
                  sizes: SubjectSizes | dict[str, SubjectSizes] | None = None, report: dict | None = None,
                  performer: str | None = None) -> Motion:
    """Solve a labelled marker take to a skeleton Motion (see the module doc).

    X (F, M, 3) marker positions, metres, Doppel's frame (+Y up), NaN where unseen; labels (M,) as in the file;
    fps the take's rate; sizes the performer's measurements, both sides or each ("L", "R": `SubjectSizes.from_vsk`;
    default: adult averages); report: a dict to fill with the solve's quality figures (`marker_qc`); performer: the
    subject prefix whose markers to solve when the take holds several (``Stunt1`` of ``Stunt1:LASI``). Raises
    ClipError naming the markers of the set the take lacks, or what else is wrong."""
    labels = _performers_labels(labels, performers(labels), performer, source)
    found = canonical_labels(labels)
    missing = missing_required(found)
    if missing:
        raise ClipError(f"{source}: {X.shape[1]} markers at {fps:g} Hz, not the Plug-in Gait / CMU full-body marker "
                        f"set Doppel solves: {len(missing)} of its markers missing ({', '.join(missing[:8])}"
                        f"{', ...' if len(missing) > 8 else ''}); solve it in the capture software and export "
                        f"BVH, FBX, glTF or USD")
    names = list(found)
    filled = fill_gaps(X[:, [found[n] for n in names]], int(round(MAX_FILL_S * fps)))
    mk = {n: filled[:, i] for i, n in enumerate(names)}
    ref = reference_frame(mk, source)
    if not isinstance(sizes, dict):
        sizes = {"L": sizes or SubjectSizes(), "R": sizes or SubjectSizes()}
    paths = centre_paths(mk, sizes)
    clusters = track_clusters(mk, ref, source)
    rotations = segment_rotations(mk, paths, ref, source, clusters)
    m0 = {n: v[ref] for n, v in mk.items()}
    ax = {"pelvis": pig.pelvis_axes(m0), "thorax": pig.thorax_axes(m0), "head": pig.head_axes(m0)}
    if report is not None:
        from mocap_retarget.marker_qc import solve_report

        raw = {n: X[:, found[n]] for n in names}
        report.update(solve_report(raw, mk, ref, paths, fps, REQUIRED, cluster_residuals(clusters), OFF_CLUSTER_M))
        report["marker_set"] = explain_markers(labels, found)
    motion = skeleton_motion({k: _fill_path(v) for k, v in paths.items()}, rotations, ref, ax, fps, source)
    motion.markers = np.stack([mk[n] for n in names], axis=1)          # for the previews: the solve's markers
    return motion


def _performers_labels(labels: list[str], several: list[str], performer: str | None, source: str) -> list[str]:
    """The labels with every performer's but ``performer``'s blanked, when the take holds several; ClipError when it
    does and ``performer`` names none of them."""
    if len(several) <= 1:
        return labels
    if performer not in several:
        which = f"--subject {performer!r} is none of them" if performer else "name one with --subject"
        raise ClipError(f"{source}: {len(several)} performers' markers in one take ({', '.join(several)}): {which} "
                        f"(their Vicon subject file, e.g. {several[0]}.vsk, or the name alone)")
    return [lab if lab.strip().rpartition(":")[0] == performer else "" for lab in labels]


MIN_HINT_ANGLE_DEG = 30.0   # a twist hint closer than this to the bone gives way to the body frame's other axis


def rest_turn(bone: np.ndarray, axis: np.ndarray, hint: str, ax: dict) -> np.ndarray:
    """The rotation (3, 3) from a bone's T-pose frame to its reference-frame pose: ``axis`` (its T-pose direction)
    onto ``bone`` (its direction at the reference frame), the twist set by the body frame's axis ``hint`` ("pelvis
    forward", "thorax forward", "head forward", "pelvis up") on the T-pose's same axis; when the bone lies within
    MIN_HINT_ANGLE_DEG of that axis (a forearm pointing forward at the reference frame) the body frame's other axis
    (up, or forward for "up") sets it instead."""
    body, which = hint.split()
    other = "up" if which == "forward" else "forward"
    rest = {"forward": np.array([0.0, 0.0, 1.0]), "up": np.array([0.0, 1.0, 0.0])}
    b = normalize(bone)
    for name in (which, other):
        h = ax[body][name]
        if np.linalg.norm(np.cross(b, h)) >= np.sin(np.radians(MIN_HINT_ANGLE_DEG)):
            return frame_of(bone, h) @ frame_of(axis, rest[name]).T
    return frame_of(bone, ax[body][other]) @ frame_of(axis, rest[other]).T


def skeleton_motion(paths: dict[str, np.ndarray], rotations: dict[str, np.ndarray], ref: int, ax: dict, fps: float,
                    source: str) -> Motion:
    """The skeleton of JOINTS in its T-pose rest and its motion: each joint at its centre's path (F, 3), its world
    rotation its segment's rotation from the reference frame after the turn A from the T-pose to the reference
    frame's pose."""
    names = list(JOINTS)
    parents = [names.index(p) if p else -1 for p, _ in JOINTS.values()]
    c = {k: v[ref] for k, v in paths.items()}
    A = {j: rest_turn(c[end] - c[j], np.array(axis, float), hint, ax) for j, (end, axis, hint) in BONES.items()}
    F, J = len(rotations["pelvis"]), len(names)
    rest = np.tile(np.eye(4), (J, 1, 1))
    world = np.tile(np.eye(4), (F, J, 1, 1))
    for i, j in enumerate(names):
        parent, seg = JOINTS[j]
        if parent is None:
            rest[i, :3, 3] = (0.0, c[j][1], 0.0)
        else:
            rest[i, :3, 3] = rest[names.index(parent), :3, 3] + A[parent].T @ (c[j] - c[parent])
        world[:, i, :3, :3] = rotations[seg] @ A[j]
        world[:, i, :3, 3] = paths[j]
    ends = {i: [A[j].T @ (c[BONES[j][0]] - c[j])] for i, j in enumerate(names) if BONES[j][0].endswith(".end")}
    return motion_from_world(names, parents, rest, world, fps, source, end_sites=ends)
