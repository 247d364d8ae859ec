"""Build the kit that the GPU checks of issue 15 carry to the device machine (a second machine with a GPU, lent to
some sessions; see scripts/device_checks.sh for what runs there and docs/device.md for the procedure).

    .venv/bin/python scripts/device_kit.py --capture CAPTURE --fit FIT [--out .devkit] [--python-version 3.12]

The device machine has its own Python (3.12) with CUDA PyTorch, numpy 2, SciPy, OpenCV, Pillow and
safetensors, reaches no network, and takes at most 64 MiB of working tree per call. It has no body model (Anny
needs warp and a 1 GB cache), no Blender and no MediaPipe. So everything that needs them is made here:

- OUT/capture: the capture's session (calibration and PNG photos; EXRs left out) and ground truth (params, meshes);
- OUT/fit: the fit (params, fit_mesh.ply, manifest) with its UV layout written out (``uv_layout.npz``), so the fit
  loads without the body model;
- OUT/novel: the novel-pose meshes, the fit posed by its rig into each later frame
  (``benchmarks/neural_double.py --novel-mesh OUT/novel``);
- OUT/whl: wheels for that Python of the packages it lacks (pinned to this environment's versions).

The kit sends photos to another machine, so only the virtual actor travels: a capture and a fit without proof
that they are synthetic (`doppel.likeness.inspect_input`: `doppel capture synth`'s session manifest, a fit
manifest recording the virtual actor whose hashes match) are refused. Prints the kit's size; refuses (exit 1) when
it would not travel (over 60 MiB).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

# What the device's Python lacks (docs/device.md). pydantic (capture.calibration_io reads the calibration with it) is
# not in the device image's package list as last read (2026-11-17): it travels with its own needs, pinned together.
WHEELS = ("trimesh", "roma", "flip-evaluator", "OpenEXR",
          "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
MAX_MIB = 60.0                                              # the call carries 64 MiB with the repository
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def require_virtual_actor(capture: Path, fit: Path) -> None:
    """SystemExit naming the input unless the capture's session and the fit are proven the virtual actor's."""
    from doppel.likeness import inspect_input

    for path in (capture / "session", fit):
        ev = inspect_input(path, required=True, ws=None, key=None)
        if ev.problem or not ev.virtual_ok:
            raise SystemExit(f"{path}: not proven the virtual actor's ({ev.problem or ev.why_unproven}); the device "
                             "kit carries synthetic captures only")


def copy_capture(capture: Path, out: Path) -> None:
    """Session (calibration.json, images/**/*.png) and ground truth (params.json, *.ply, joints) of a capture."""
    session = capture / "session"
    (out / "session").mkdir(parents=True)
    shutil.copy2(session / "calibration.json", out / "session" / "calibration.json")
    for png in sorted((session / "images").rglob("*.png")):
        dst = out / "session" / png.relative_to(session)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, dst)
    gt = capture / "ground_truth"
    for f in sorted(gt.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".ply"):
            dst = out / "ground_truth" / f.relative_to(gt)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)


def copy_fit(fit: Path, out: Path) -> None:
    """params.json, fit_mesh.ply, manifest.json (and a take's frames/*/fit_mesh.ply) plus uv_layout.npz."""
    from doppel.neural_inputs import UV_LAYOUT_FILE, write_uv_layout

    out.mkdir(parents=True)
    for name in ("params.json", "fit_mesh.ply", "manifest.json"):
        if (fit / name).is_file():
            shutil.copy2(fit / name, out / name)
    for f in sorted(fit.glob("frames/*/fit_mesh.ply")):
        (out / f.parent.relative_to(fit)).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out / f.relative_to(fit))
    write_uv_layout(fit, out / UV_LAYOUT_FILE)


def download_wheels(out: Path, python_version: str) -> None:
    """Binary wheels of WHEELS for CPython ``python_version`` on x86-64 Linux, pinned to the installed versions."""
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(out)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + pins, check=True)


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2 ** 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture", type=Path, required=True, help="a capture folder (session/ + ground_truth/)")
    ap.add_argument("--fit", type=Path, required=True, help="a Doppel fit of the capture's first frame")
    ap.add_argument("--out", type=Path, default=ROOT / ".devkit", help="the kit folder (replaced)")
    ap.add_argument("--python-version", default="3.12", help="the device's Python (wheels are built for it)")
    args = ap.parse_args()
    from neural_double import write_rig_posed_meshes

    require_virtual_actor(args.capture, args.fit)
    if args.out.exists():
        shutil.rmtree(args.out)
    copy_capture(args.capture, args.out / "capture")
    copy_fit(args.fit, args.out / "fit")
    novel = write_rig_posed_meshes(args.fit, args.capture, args.out / "novel")
    download_wheels(args.out / "whl", args.python_version)
    mib = size_mib(args.out)
    print(f"{args.out}: {mib:.1f} MiB (capture {size_mib(args.out / 'capture'):.1f}, fit "
          f"{size_mib(args.out / 'fit'):.1f}, {len(novel)} novel-pose meshes, wheels {size_mib(args.out / 'whl'):.1f})")
    if mib > MAX_MIB:
        print(f"{args.out}: over {MAX_MIB:.0f} MiB: it would not travel with the repository (64 MiB a call)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
