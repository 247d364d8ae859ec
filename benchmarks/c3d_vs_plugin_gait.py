"""Doppel's C3D solve (`mocap_retarget.marker_solve`) against Vicon Nexus's Plug-in Gait on the same trial: a Nexus
C3D that carries Plug-in Gait's "bones" (the segments' origins, e.g. LFEO the knee centre, LTIO the ankle, LCLO the
shoulder, LHUO the elbow, LRAO the wrist, PELO the hips' midpoint) beside the markers. Prints each joint centre's
distance from Nexus's (mm) and each limb's direction difference (degrees), solved with the subject's measurements
from its VSK, from the C3D's own PROCESSING group (where Nexus writes them) and with Doppel's adult defaults; then
the knee, ankle and elbow chords alone, fed Nexus's own proximal centres (the chord function's agreement by itself).

    python benchmarks/c3d_vs_plugin_gait.py TRIAL.c3d --vsk SUBJECT.vsk

Run on the pyCGM project's Vicon test files (github.com/cadop/pyCGM, SampleData/Test_Files: Movement_trial.c3d,
Test.vsk; not shipped).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocap_retarget import plugin_gait as pig
from mocap_retarget.clip_c3d import read_c3d_take
from mocap_retarget.marker_solve import SubjectSizes, solve_markers

CENTRES = {"Hips": "PELO", "LeftLeg": "LFEO", "RightLeg": "RFEO", "LeftFoot": "LTIO", "RightFoot": "RTIO",
           "LeftArm": "LCLO", "RightArm": "RCLO", "LeftForeArm": "LHUO", "RightForeArm": "RHUO",
           "LeftHand": "LRAO", "RightHand": "RRAO"}
# Doppel's joint -> the Plug-in Gait segment whose rotation it takes (its bones: O, A, L, P points)
SEGMENTS = {"Hips": "PEL", "Chest": "TRX", "Head": "HED", **{f"{S}{j}": f"{S[0]}{seg}" for S in ("Left", "Right")
            for j, seg in (("UpLeg", "FE"), ("Leg", "TI"), ("Foot", "FO"), ("Arm", "HU"), ("ForeArm", "RA"),
                           ("Hand", "HN"))}}
LIMBS = {f"{part}_{S[0].lower()}": (f"{S}{a}", f"{S}{b}") for S in ("Left", "Right")
         for part, a, b in (("shin", "Leg", "Foot"), ("upper_arm", "Arm", "ForeArm"), ("forearm", "ForeArm", "Hand"))}


def report(X, labels, rate, sizes, title: str) -> None:
    col = {lab: i for i, lab in enumerate(labels)}
    m = solve_markers(X, labels, rate, "trial", sizes)
    _, P = m.forward_kinematics()
    nexus = {j: X[:, col[v]] for j, v in CENTRES.items()}
    print(f"\n{title}\n{'joint centre':<14} {'mean mm':>8} {'max mm':>8}")
    for j in CENTRES:
        d = 1000 * np.linalg.norm(P[:, m.index(j)] - nexus[j], axis=1)
        print(f"{j:<14} {np.nanmean(d):8.4f} {np.nanmax(d):8.4f}")
    print(f"{'limb':<14} {'median deg':>10} {'max deg':>8}")
    for name, (a, b) in LIMBS.items():
        u, v = P[:, m.index(b)] - P[:, m.index(a)], nexus[b] - nexus[a]
        cos = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        e = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        print(f"{name:<14} {np.nanmedian(e):10.2f} {np.nanmax(e):8.2f}")
    rotations_since_reference(m, X, col)


def rotations_since_reference(m, X, col) -> None:
    """Each segment's rotation from the solve's reference frame in Doppel and in Nexus (from Plug-in Gait's bone
    points), and the angle between the two: the segments' motion, their twist included."""
    G, _ = m.forward_kinematics()
    ref = 0
    print(f"{'segment':<14} {'median deg':>10} {'max deg':>8}   (rotation since frame {ref}: Doppel vs Nexus)")
    for j, seg in SEGMENTS.items():
        o = X[:, col[seg + "O"]]
        N = np.stack([X[:, col[seg + k]] - o for k in "ALP"], axis=-1)
        N = N / np.linalg.norm(N, axis=1, keepdims=True)
        ours = G[:, m.index(j)] @ G[ref, m.index(j)].T
        theirs = N @ np.swapaxes(N[ref], -1, -2)
        cos = (np.trace(np.swapaxes(ours, -1, -2) @ theirs, axis1=-2, axis2=-1) - 1) / 2
        e = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        print(f"{j:<14} {np.nanmedian(e):10.2f} {np.nanmax(e):8.2f}")


def chords_alone(X, labels, sizes) -> None:
    col = {lab: i for i, lab in enumerate(labels)}
    V = {lab: X[:, i] for lab, i in col.items()}
    print("\nchords alone, from Nexus's proximal centres (mean / max mm from Nexus's centre)")
    for s in "LR":
        sz = sizes[s]
        wrist = (V[s + "WRA"] + V[s + "WRB"]) / 2
        for name, got, want in (
                ("knee", pig.knee_centre(V[s + "FEP"], V[s + "THI"], V[s + "KNE"], sz), V[s + "FEO"]),
                ("ankle", pig.ankle_centre(V[s + "FEO"], V[s + "TIB"], V[s + "ANK"], sz), V[s + "TIO"]),
                ("elbow", pig.elbow_centre(V[s + "CLO"], V[s + "ELB"], wrist, s, sz), V[s + "HUO"]),
                ("wrist", pig.wrist_centre(V[s + "HUO"], V[s + "WRA"], V[s + "WRB"], s, sz), V[s + "RAO"])):
            d = 1000 * np.linalg.norm(got - want, axis=1)
            print(f"  {s} {name:<6} {np.nanmean(d):9.4f} {np.nanmax(d):9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("c3d")
    ap.add_argument("--vsk")
    args = ap.parse_args()
    X, labels, rate, processing = read_c3d_take(args.c3d)
    print(f"{args.c3d}: {X.shape[0]} frames at {rate:g} Hz, {X.shape[1]} points")
    if args.vsk:
        sizes = SubjectSizes.from_vsk(args.vsk)
        report(X, labels, rate, sizes, f"with the subject's measurements ({args.vsk}): {sizes}")
        chords_alone(X, labels, sizes)
    if processing.get("LKneeWidth", 0) > 0:
        report(X, labels, rate, SubjectSizes.from_values(processing, ("L", "R")),
               "with the file's own PROCESSING group (what `doppel retarget TRIAL.c3d` uses without --subject)")
    report(X, labels, rate, SubjectSizes(), "with Doppel's adult defaults")


if __name__ == "__main__":
    main()
