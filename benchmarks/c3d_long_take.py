"""A long C3D take through Doppel's marker solve: the given take repeated to about ``--minutes`` minutes (the
markers jump where one copy meets the next; the solve works frame by frame, so its cost does not care), written by
ezc3d, then read and solved (`mocap_retarget.clip_c3d`), timing the read and the solve and the process's peak
memory.

    python benchmarks/c3d_long_take.py TAKE.c3d --minutes 10
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocap_retarget.clip_c3d import read_c3d_markers
from mocap_retarget.marker_solve import solve_markers


def write_tiled(src: str, dst: Path, minutes: float) -> int:
    import ezc3d

    c = ezc3d.c3d(src)
    pts = c["data"]["points"]                                            # (4, M, F)
    rate = float(c["parameters"]["POINT"]["RATE"]["value"][0])
    copies = max(1, int(np.ceil(minutes * 60 * rate / pts.shape[2])))
    out = ezc3d.c3d()
    out["parameters"]["POINT"]["RATE"]["value"] = [rate]
    out["parameters"]["POINT"]["LABELS"]["value"] = tuple(c["parameters"]["POINT"]["LABELS"]["value"])
    out["parameters"]["POINT"]["UNITS"]["value"] = c["parameters"]["POINT"]["UNITS"]["value"]
    out["parameters"]["POINT"]["Y_SCREEN"] = c["parameters"]["POINT"]["Y_SCREEN"]
    out["data"]["points"] = np.tile(pts, (1, 1, copies))
    out.write(str(dst))
    return copies * pts.shape[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("c3d")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.c3d"
        frames = write_tiled(args.c3d, path, args.minutes)
        size = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        X, labels, rate = read_c3d_markers(path)
        t1 = time.perf_counter()
        motion = solve_markers(X, labels, rate, str(path))
        t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{frames} frames ({frames / rate / 60:.1f} min at {rate:g} Hz), {X.shape[1]} points, {size:.0f} MB: "
          f"read {t1 - t0:.1f} s, solve {t2 - t1:.1f} s to {motion.num_joints} joints; peak memory {peak:.2f} GB")


if __name__ == "__main__":
    main()
