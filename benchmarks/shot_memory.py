"""Does `doppel render shot` stream its movie? Peak memory of a shot against its length.

The movie of each camera was kept in memory until the camera's last frame (3 MB a frame at 1024 px). This script
makes the tests' sphere double (a 64 px capture, one training step: the shot's cost does not depend on the
training), a spinning animation of each given length, renders each shot with `doppel render shot` in a child process
at --size with the CGI renderer, and prints the child's peak resident memory and time.

    PYTHONPATH=. python benchmarks/shot_memory.py [--frames 60,240] [--size 512] [--work DIR]
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import core  # noqa: F401  (before torch)


def make_double(root: Path) -> None:
    import tests.doppel.test_render_cli as t
    from capture.session import write_session
    from tests.neural_render.scenes import albedo_texture, photograph, ring_cameras, uv_sphere

    v, f, uv, fuv = uv_sphere()
    cams = ring_cameras(8, 64)
    imgs, _ = photograph(v, f, uv, fuv, cams, albedo_texture(64))
    write_session(root / "session", list(cams), {c.name: imgs[i].numpy() for i, c in enumerate(cams)})
    t._fit_folder(root / "fit", v, f, uv, fuv)
    subprocess.run([sys.executable, "-m", "doppel", "render", "train", str(root / "session"), "--fit",
                    str(root / "fit"), "--out", str(root / "m"), "--size", "64", "--iterations", "1", "--device",
                    "cpu"], check=True, capture_output=True)
    t._sphere_rig(root / "rig")


def shot(root: Path, frames: int, size: int) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of a shot of ``frames`` frames."""
    import tests.doppel.test_render_cli as t

    anim = root / f"anim{frames}"
    if not anim.exists():
        t._spin_animation(anim, frames)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "doppel", "render", "shot", str(root / "m"), "--cameras",
           str(root / "session" / "calibration.json"), "--camera", "cam0", "--rig", str(root / "rig"), "--anim",
           str(anim), "--size", str(size), "--renderer", "cgi", "--out", str(root / f"shot{frames}"), "--force"]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)[1]) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err)[1].split(":")
    return rss, sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="60,240")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    root = a.work or Path(tempfile.mkdtemp(prefix="shot_memory_"))
    if not (root / "m").exists():
        make_double(root)
    print(f"machine: {platform.machine()}; {a.size} px, CGI renderer, one camera")
    for n in (int(x) for x in a.frames.split(",")):
        rss, secs = shot(root, n, a.size)
        print(f"{n:5d} frames: peak {rss:7.0f} MiB, {secs:6.1f} s")


if __name__ == "__main__":
    main()
