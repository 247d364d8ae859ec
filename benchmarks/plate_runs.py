"""What the swap benchmarks on a synthetic plate share: the plate (made by `doppel capture plate` in a child process
of this repository's code, unless a folder is given) and the double they swap in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def capture_plate(out: Path, *options: str) -> None:
    """Run ``doppel capture plate --out OUT OPTIONS...`` (printed first), failing loudly."""
    cmd = [sys.executable, "-m", "doppel", "capture", "plate", "--out", str(out), *options]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def plate_folder(given: Path | None, work: Path, *options: str) -> Path:
    """``given`` (a `doppel capture plate` folder), or WORK/plate made with ``options``."""
    if given is not None:
        return given
    capture_plate(work / "plate", *options)
    return work / "plate"


def default_double(work: Path, seed: int = 0):
    """The default Anny double of ``seed`` saved as a rig in WORK/double and loaded as a face double."""
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double

    rig, params, _ = build_default_rig("anny", seed=seed)
    return load_face_double(rig.save(work / "double", params=params), work)
