"""Solving a labelled full-body marker take (`mocap_retarget.marker_set`) to a skeleton: what Vicon Shogun / Nexus,
Motive or MotionBuilder do before a take reaches a retargeter, done the way gait labs do it.

1. Each body segment's rigid motion is tracked from its markers: per frame, the rotation and translation that take
   the segment's markers at a reference frame (the first frame that sees every required marker) onto the frame's
   (Kabsch, on the markers seen in that frame; three at least, else interpolated from the neighbouring frames).
   A marker's short gaps (up to 0.2 s) are filled linearly first.
2. Joint centres, fixed in their parent segment: the hips by Harrington et al. (J Biomech 2007)'s regression from
   the pelvis width and depth; knee, ankle and elbow medial of their lateral marker by the marker's radius plus half
   the joint's width (adult defaults, `SubjectSizes`); the shoulder below the acromion marker; the wrist between its
   two markers. Thigh, upper arm and forearm take the joint centre above them as a third point; the hand's frame is
   the wrist-to-finger direction turned about by the wrist's two markers.
3. The skeleton: Hips, Spine, Neck, Head, Left/Right Shoulder, Arm, ForeArm, Hand, UpLeg, Leg, Foot, ToeBase.
   Its rest pose is a T-pose of the performer's own bone lengths (each segment's reference-frame pose turned so its
   bone lies on the T-pose's axis, its twist set by the body's forward at the reference frame; the feet's by up),
   so the retargeter's rest alignment sees the pose it expects.

Everything is in Doppel's frame (metres, +Y up) on input and output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mocap_retarget.bvh import Motion
from mocap_retarget.rotations import normalize
from mocap_retarget.world_motion import ClipError, motion_from_world

MAX_FILL_S = 0.2            # a marker's gap up to this long is filled linearly


@dataclass(frozen=True)
class SubjectSizes:
    """The performer's measurements the joint centres need, metres (adult defaults; Plug-in Gait measures them)."""

    marker_radius: float = 0.007
    knee_width: float = 0.10
    ankle_width: float = 0.07
    elbow_width: float = 0.07
    shoulder_offset: float = 0.05
    wrist_thickness: float = 0.04


# joint -> (parent, segment whose motion it follows)
JOINTS: dict[str, tuple[str | None, str]] = {
    "Hips": (None, "pelvis"), "Spine": ("Hips", "thorax"), "Neck": ("Spine", "head"), "Head": ("Neck", "head"),
    **{f"{S}Shoulder": ("Spine", "thorax") for S in ("Left", "Right")},
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
    "Hips": ("Spine", (0, 1, 0), "pelvis forward"), "Spine": ("Neck", (0, 1, 0), "thorax forward"),
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

    def apply(self, x_ref: np.ndarray) -> np.ndarray:
        """(3,) point at the reference frame -> (F, 3) its path."""
        return self.R @ x_ref + self.t


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


def kabsch_track(P_ref: np.ndarray, P: np.ndarray, source: str, segment: str) -> Rigid:
    """P_ref (n, 3) a segment's points at the reference frame, P (F, n, 3) per frame (NaN: unseen) -> its Rigid
    motion; frames with fewer than three points seen are interpolated (rotations slerped) from the others."""
    w = np.isfinite(P).all(axis=2).astype(np.float64)                      # (F, n)
    Pz = np.nan_to_num(P)
    cnt = w.sum(axis=1)
    ok = cnt >= 3
    if not ok.any():
        raise ClipError(f"{source}: the {segment.replace('_', ' ')} is never seen by three of its markers")
    cnt = np.maximum(cnt, 1)[:, None]
    c_ref = (w @ P_ref) / cnt                                                 # (F, 3)
    c = np.einsum("fn,fnk->fk", w, Pz) / cnt
    A = P_ref[None] - c_ref[:, None]
    B = Pz - c[:, None]
    H = np.einsum("fn,fni,fnj->fij", w, A, B)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, 1, 2) @ np.swapaxes(U, 1, 2)))
    D = np.zeros_like(H)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    R = np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)
    t = c - np.einsum("fij,fj->fi", R, c_ref)
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


def _axes(left: np.ndarray, up: np.ndarray, forward: np.ndarray) -> dict[str, np.ndarray]:
    """A body frame's unit axes (left, up, forward), made orthonormal with forward kept."""
    f = normalize(forward)
    lft = normalize(np.cross(up, f))
    return {"left": lft, "up": np.cross(f, lft), "forward": f}


def pelvis_axes(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pelvis's axes (left, up, forward) from its four markers at one frame (each name -> (3,))."""
    front, back = (m["LASI"] + m["RASI"]) / 2, (m["LPSI"] + m["RPSI"]) / 2
    return _axes(m["LASI"] - m["RASI"], np.cross(front - back, m["LASI"] - m["RASI"]), front - back)


def body_axes(m: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The pelvis's, the thorax's and the head's axes from their markers at one frame (each name -> (3,))."""
    pelvis = pelvis_axes(m)
    top, bottom = (m["C7"] + m["CLAV"]) / 2, (m["T10"] + m["STRN"]) / 2
    chest_front, chest_back = (m["CLAV"] + m["STRN"]) / 2, (m["C7"] + m["T10"]) / 2
    thorax = _axes(np.cross(top - bottom, chest_front - chest_back), top - bottom, chest_front - chest_back)
    head = _axes(m["LFHD"] + m["LBHD"] - m["RFHD"] - m["RBHD"], thorax["up"],
                 m["LFHD"] + m["RFHD"] - m["LBHD"] - m["RBHD"])
    return {"pelvis": pelvis, "thorax": thorax, "head": head}


def harrington_hips(m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) hip joint centres (3,) metres from the pelvis markers at one frame: Harrington et al. 2007's
    regression on pelvis width PW (between the ASIS) and depth PD (ASIS to PSIS midpoints), in millimetres:
    posterior 0.24 PD + 9.9, inferior 0.30 PW + 10.9, lateral 0.33 PW + 7.3 from the ASIS midpoint."""
    ax = pelvis_axes(m)
    front, back = (m["LASI"] + m["RASI"]) / 2, (m["LPSI"] + m["RPSI"]) / 2
    pw, pd = 1000 * np.linalg.norm(m["LASI"] - m["RASI"]), 1000 * np.linalg.norm(front - back)
    base = front - ax["forward"] * (0.24 * pd + 9.9) / 1000 - ax["up"] * (0.30 * pw + 10.9) / 1000
    side = ax["left"] * (0.33 * pw + 7.3) / 1000
    return base + side, base - side


def _medial(marker: np.ndarray, lateral: np.ndarray, depth: float) -> np.ndarray:
    return marker - depth * normalize(lateral)


def _perpendicular(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    a = normalize(axis)
    return v - np.dot(v, a) * a


def joint_centres(m: dict[str, np.ndarray], sizes: SubjectSizes,
                  lateral: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every joint's centre and bone end (``X.end``) at one frame (the reference), metres; ``m``: marker -> (3,);
    ``lateral``: the elbows' lateral directions ("LeftForeArm", "RightForeArm": (3,)) where the take gave them
    (`elbow_laterals`), else the body's left or right made perpendicular to the bone (the knees: always)."""
    ax = body_axes(m)
    lateral = lateral or {}
    hip = dict(zip("LR", harrington_hips(m), strict=True))
    r = sizes.marker_radius
    head = np.mean([m[k] for k in ("LFHD", "RFHD", "LBHD", "RBHD")], axis=0)
    head_up = ax["head"]["up"]
    c = {"Hips": (hip["L"] + hip["R"]) / 2, "Spine": np.mean([m[k] for k in ("LASI", "RASI", "LPSI", "RPSI")], 0),
         "Neck": (m["C7"] + m["CLAV"]) / 2, "Head": head, "Head.end": head + 0.1 * head_up}
    for s, S, sign in (("L", "Left", 1.0), ("R", "Right", -1.0)):
        side = sign * ax["pelvis"]["left"]
        knee_out = lateral.get(f"{S}Leg", _perpendicular(side, m[s + "KNE"] - hip[s]))
        knee = _medial(m[s + "KNE"], knee_out, r + sizes.knee_width / 2)
        ankle = _medial(m[s + "ANK"], _perpendicular(knee_out, m[s + "ANK"] - knee), r + sizes.ankle_width / 2)
        toe = m[s + "TOE"]
        shoulder = m[s + "SHO"] - (r + sizes.shoulder_offset) * ax["thorax"]["up"]
        elbow_out = lateral.get(f"{S}ForeArm", _perpendicular(sign * ax["thorax"]["left"], m[s + "ELB"] - shoulder))
        elbow = _medial(m[s + "ELB"], elbow_out, r + sizes.elbow_width / 2)
        c |= {f"{S}UpLeg": hip[s], f"{S}Leg": knee, f"{S}Foot": ankle, f"{S}ToeBase": toe,
              f"{S}ToeBase.end": toe + 0.04 * normalize(_perpendicular(toe - ankle, ax["pelvis"]["up"])),
              f"{S}Shoulder": c["Neck"], f"{S}Arm": shoulder, f"{S}ForeArm": elbow,
              f"{S}Hand": _wrist(m, s, sign, elbow, r + sizes.wrist_thickness / 2), f"{S}Hand.end": m[s + "FIN"]}
    return c


def _wrist(m: dict[str, np.ndarray], s: str, sign: float, elbow: np.ndarray, depth: float) -> np.ndarray:
    """Plug-in Gait's wrist centre: the wrist markers' midpoint moved towards the palm (perpendicular to the forearm
    and to the thumb-side-minus-little-finger-side marker line) by half the wrist's thickness plus a marker's
    radius."""
    mid = (m[s + "WRA"] + m[s + "WRB"]) / 2
    palm = sign * np.cross(normalize(mid - elbow), normalize(m[s + "WRA"] - m[s + "WRB"]))
    return mid + depth * normalize(palm)


MIN_FLEXION_DEG = 25.0      # frames bent at least this much show a hinge's axis


def flexion_axis(u: np.ndarray, v: np.ndarray, R: np.ndarray) -> np.ndarray | None:
    """A hinge's flexion axis (3,) at the reference frame: u x v of the two bones (u, v (F, 3) the proximal and
    distal bones' directions), carried back to the reference by the proximal segment's rotations R (F, 3, 3),
    averaged over the frames bent more than MIN_FLEXION_DEG (weighted by the bend's sine); None when no three
    frames bend so far. (The dominant axis of the distal segment's rotations relative to the proximal one was
    tried: through an upper arm tracked by one arm marker it moved the CMU walk's forearms 2 degrees further from
    the capture's own solve.)"""
    u, v = normalize(u), normalize(v)
    n = np.cross(u, v)
    sin = np.linalg.norm(n, axis=-1)
    bent = np.isfinite(sin) & (sin > np.sin(np.radians(MIN_FLEXION_DEG))) & (np.sum(u * v, axis=-1) > -0.5)
    if bent.sum() < 3:
        return None
    return normalize(np.einsum("fji,fj->i", R[bent], n[bent]))        # sum of R^T n: into the reference frame


def elbow_laterals(mk: dict[str, np.ndarray], tracks: dict[str, Rigid], shoulders: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """The elbows' lateral directions from how they bend over the take (an elbow flexes about its medial axis on the
    left, its lateral on the right); ``shoulders``: side -> (F, 3) shoulder centre paths. The knees keep the body's
    left-right: on the CMU walk their flexion axes, through a thigh tracked by one thigh marker, moved the thighs 3
    degrees further from the capture's own solve (benchmarks/c3d_vs_vendor_bvh.py)."""
    out = {}
    for s, S, sign in (("L", "Left", 1.0), ("R", "Right", -1.0)):
        wrist = (mk[s + "WRA"] + mk[s + "WRB"]) / 2
        elbow = flexion_axis(mk[s + "ELB"] - shoulders[s], wrist - mk[s + "ELB"], tracks[f"upperarm_{s.lower()}"].R)
        if elbow is not None:
            out[f"{S}ForeArm"] = -sign * elbow
    return out


def _segments(s: str, S: str) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    """One side's segments in tracking order: (segment, its markers, (joint centre, the segment it is fixed in))."""
    return [(f"thigh_{s.lower()}", (s + "THI", s + "KNE"), ((f"{S}UpLeg", "pelvis"),)),
            (f"shank_{s.lower()}", (s + "KNE", s + "TIB", s + "ANK"), ()),
            (f"foot_{s.lower()}", (s + "HEE", s + "TOE", s + "MT5"), ((f"{S}Foot", f"shank_{s.lower()}"),)),
            (f"upperarm_{s.lower()}", (s + "UPA", s + "ELB"), ((f"{S}Arm", "thorax"),)),
            (f"forearm_{s.lower()}", (s + "WRA", s + "WRB", s + "FRM"), ((f"{S}ForeArm", f"upperarm_{s.lower()}"),))]


SEGMENTS = [("pelvis", ("LASI", "RASI", "LPSI", "RPSI"), ()), ("thorax", ("C7", "T10", "CLAV", "STRN", "RBAK"), ()),
            ("head", ("LFHD", "RFHD", "LBHD", "RBHD"), ())] + _segments("L", "Left") + _segments("R", "Right")


def track_segments(mk: dict[str, np.ndarray], ref: int, c: dict[str, np.ndarray], source: str) -> dict[str, Rigid]:
    """Every segment's Rigid motion from the reference frame ``ref``: mk marker -> (F, 3) path (NaN unseen),
    c the joint centres at ``ref``."""
    tracks: dict[str, Rigid] = {}
    for seg, markers, virtual in SEGMENTS:
        seen = [n for n in markers if n in mk and np.isfinite(mk[n][ref]).all()]   # optional ones may be absent
        P_ref = [mk[n][ref] for n in seen] + [c[j] for j, _ in virtual]
        P = [mk[n] for n in seen] + [tracks[s].apply(c[j]) for j, s in virtual]
        tracks[seg] = kabsch_track(np.stack(P_ref), np.stack(P, axis=1), source, seg)
    for s in "LR":
        tracks[f"hand_{s.lower()}"] = _hand_track(mk, ref, s, source)
    return tracks


def _hand_track(mk: dict[str, np.ndarray], ref: int, s: str, source: str) -> Rigid:
    """The hand's motion: the wrist-to-finger direction, turned about by the wrist's two markers (radial - ulnar)."""
    wrist = (mk[s + "WRA"] + mk[s + "WRB"]) / 2
    fr = frame_of(mk[s + "FIN"] - wrist, mk[s + "WRA"] - mk[s + "WRB"])
    R = fr @ np.swapaxes(fr[ref], -1, -2)
    t = wrist - R @ wrist[ref]
    ok = np.isfinite(R).all(axis=(1, 2)) & np.isfinite(t).all(axis=1)
    if not ok.any():
        raise ClipError(f"{source}: the {'left' if s == 'L' else 'right'} hand's markers are never all seen")
    if not ok.all():
        R, t = _interpolate(R, t, ok)
    return Rigid(R, t)


def reference_frame(mk: dict[str, np.ndarray], source: str) -> int:
    """The first frame that sees every marker of the set the file has (after gap filling)."""
    from mocap_retarget.marker_set import REQUIRED

    seen = np.stack([np.isfinite(mk[n]).all(axis=1) for n in REQUIRED], axis=1).all(axis=1)
    if not seen.any():
        worst = min(REQUIRED, key=lambda n: np.isfinite(mk[n]).all(axis=1).sum())
        raise ClipError(f"{source}: no frame sees every marker of the set at once (e.g. {worst} is seen in "
                        f"{int(np.isfinite(mk[worst]).all(axis=1).sum())} frames)")
    return int(np.argmax(seen))


def solve_markers(X: np.ndarray, labels: list[str], fps: float, source: str,
                  sizes: SubjectSizes | None = None) -> Motion:
    """Solve a labelled marker take to a skeleton Motion (see the module doc).

    X (F, M, 3) marker positions, metres, Doppel's frame (+Y up), NaN where unseen; labels (M,) as in the file;
    fps the take's rate. Raises ClipError naming the markers of the set the take lacks, or what else is wrong."""
    from mocap_retarget.marker_set import canonical_labels, missing_required

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
    m0 = {n: v[ref] for n, v in mk.items()}
    sizes = sizes or SubjectSizes()
    c = joint_centres(m0, sizes)
    tracks = track_segments(mk, ref, c, source)           # first pass: the elbows from the body's left-right
    shoulders = {s: tracks["thorax"].apply(c[f"{S}Arm"]) for s, S in (("L", "Left"), ("R", "Right"))}
    c = joint_centres(m0, sizes, elbow_laterals(mk, tracks, shoulders))
    tracks = track_segments(mk, ref, c, source)
    return skeleton_motion(c, tracks, body_axes(m0), fps, source)


def skeleton_motion(c: dict[str, np.ndarray], tracks: dict[str, Rigid], ax: dict, fps: float, source: str
                    ) -> Motion:
    """The skeleton of JOINTS in its T-pose rest and its motion: each joint's world rotation its segment's motion
    after the turn A from the T-pose to the reference frame's pose, its position its centre carried by its parent's
    segment."""
    names = list(JOINTS)
    parents = [names.index(p) if p else -1 for p, _ in JOINTS.values()]
    hints = {"pelvis forward": (ax["pelvis"]["forward"], (0.0, 0.0, 1.0)),
             "thorax forward": (ax["thorax"]["forward"], (0.0, 0.0, 1.0)),
             "head forward": (ax["head"]["forward"], (0.0, 0.0, 1.0)),
             "pelvis up": (ax["pelvis"]["up"], (0.0, 1.0, 0.0))}
    A = {}
    for j, (end, axis, hint) in BONES.items():
        h, h_rest = hints[hint]
        A[j] = frame_of(c[end] - c[j], h) @ frame_of(np.array(axis, float), np.array(h_rest)).T
    F, J = len(tracks["pelvis"].R), len(names)
    rest = np.tile(np.eye(4), (J, 1, 1))
    world = np.tile(np.eye(4), (F, J, 1, 1))
    for i, j in enumerate(names):
        parent, seg = JOINTS[j]
        if parent is None:
            rest[i, :3, 3] = (0.0, c[j][1], 0.0)
        else:
            rest[i, :3, 3] = rest[names.index(parent), :3, 3] + A[parent].T @ (c[j] - c[parent])
        world[:, i, :3, :3] = tracks[seg].R @ A[j]
        world[:, i, :3, 3] = tracks[JOINTS[parent][1] if parent else seg].apply(c[j])
    ends = {i: [A[j].T @ (c[BONES[j][0]] - c[j])] for i, j in enumerate(names) if BONES[j][0].endswith(".end")}
    return motion_from_world(names, parents, rest, world, fps, source, end_sites=ends)
