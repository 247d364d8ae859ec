"""How good a marker take's solve is (`mocap_retarget.marker_solve`), in the figures a mocap supervisor checks
before a take goes on: how much of the markers' data was missing and filled, how well the rigid clusters (pelvis,
thorax, head) hold their shape (a mislabelled or swapped marker, a marker that fell off, shows as a residual of
centimetres), and how steady each limb's length stays (a bone does not stretch: a spread of more than a centimetre
or two is soft tissue, wrong subject measurements or swapped markers).
"""

from __future__ import annotations

import numpy as np

LIMBS = {f"{part}_{S[0].lower()}": (f"{S}{a}", f"{S}{b}") for S in ("Left", "Right")
         for part, a, b in (("thigh", "UpLeg", "Leg"), ("shank", "Leg", "Foot"), ("upper_arm", "Arm", "ForeArm"),
                            ("forearm", "ForeArm", "Hand"))}


def _longest_run(mask: np.ndarray) -> int:
    """The longest run of True in a (F,) bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


def solve_report(raw: dict[str, np.ndarray], mk: dict[str, np.ndarray], ref: int, paths: dict[str, np.ndarray],
                 fps: float, required: tuple[str, ...], residuals: dict[str, np.ndarray], off_m: float) -> dict:
    """The solve's quality figures (JSON-ready). raw / mk: marker -> (F, 3) before and after gap filling (NaN
    unseen); paths: joint -> (F, 3) centres; required: the set's required markers; residuals: cluster -> (F, n)
    each of its markers' distance from the cluster's robust rigid fit (m); off_m: the distance that makes a marker
    off its cluster."""
    seen_raw = np.stack([np.isfinite(raw[n]).all(axis=1) for n in required], axis=1)
    seen = np.stack([np.isfinite(mk[n]).all(axis=1) for n in required], axis=1)
    runs = {n: _longest_run(~seen[:, k]) for k, n in enumerate(required)}
    worst = max(runs, key=runs.get)
    out: dict = {"markers": len(mk), "frames": int(len(seen)), "reference_frame": int(ref),
                 "gaps_filled_percent": round(100 * float((seen & ~seen_raw).mean()), 3),
                 "unseen_percent": round(100 * float((~seen).mean()), 3),
                 "longest_unseen_s": round(runs[worst] / fps, 3),
                 "longest_unseen_marker": worst if runs[worst] else None}
    out["cluster_rms_mm"] = {seg: round(1000 * float(np.sqrt(np.nanmean(r ** 2))), 2) for seg, r in residuals.items()}
    off = np.zeros(len(seen), dtype=bool)
    for r in residuals.values():
        off |= np.nan_to_num(r, nan=0.0).max(axis=1) > off_m
    out["frames_off_cluster"] = int(off.sum())
    out["off_cluster_mm"] = round(1000 * off_m, 1)
    lengths = {k: np.linalg.norm(paths[b] - paths[a], axis=1) for k, (a, b) in LIMBS.items()}
    out["limb_length_mm"] = {k: {"mean": round(1000 * float(np.nanmean(v)), 1),
                                 "std": round(1000 * float(np.nanstd(v)), 2)} for k, v in lengths.items()}
    return out


def summary_line(report: dict) -> str:
    """One line for the command's output."""
    rms = ", ".join(f"{k} {v:g}" for k, v in report["cluster_rms_mm"].items())
    spread = max(v["std"] for v in report["limb_length_mm"].values())
    unseen = (f"; unseen after filling {report['unseen_percent']:g}% (longest {report['longest_unseen_s']:g} s, "
              f"{report['longest_unseen_marker']})" if report["unseen_percent"] else "")
    off = (f"; {report['frames_off_cluster']} frames with a marker off its cluster by > {report['off_cluster_mm']:g} "
           f"mm (left out there)" if report["frames_off_cluster"] else "")
    sizes = f" (measurements: {report['measurements']})" if report.get("measurements") else ""
    return (f"marker solve: {report['markers']} markers{sizes}, gaps filled {report['gaps_filled_percent']:g}%"
            f"{unseen}; cluster residual RMS (mm) {rms}{off}; limb lengths steady within {spread:g} mm (std)")
