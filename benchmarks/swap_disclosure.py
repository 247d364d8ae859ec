"""What disclosing a swapped video costs: marking its frames as the swap encodes them, against re-encoding it.

Inside a workspace every output of `doppel swap` is watermarked and signed (`assets.disclosure`). A video can be
marked two ways: decode the finished file, mark every frame and encode it again (`disclose_file`, what any
writer of a finished file gets), or mark each frame as the swap's writer encodes it and only sign the file at the
end (`begin_disclosure`, what `doppel swap` does). This script swaps the same plate three times in one process
(no disclosure, the re-encode, the one encode) and prints the wall time of each, the PSNR of each disclosed
output against the undisclosed one (decoded; the watermark itself costs ~44 dB, a second H.264 generation more),
and whether `doppel verify` finds the signature trusted and reads the watermark's record.

    PYTHONPATH=. python benchmarks/swap_disclosure.py [--frames 48] [--size 1920x1080] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def workspace(root: Path):
    """A workspace with a signing identity and actor 'jane' consented for face replacement -> (ws, consent)."""
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.signing_keys import init_keys
    from assets.workspace import init_workspace

    ws = init_workspace(root)
    init_keys(ws, org="Benchmark Studio")
    add_actor(ws, "Jane Roe", actor_id="jane")
    until = (_dt.date.today() + _dt.timedelta(days=30)).isoformat()
    return ws, grant(ws, "jane", ["face_replace"], "Film", until)


def frames_psnr(a: Path, b: Path) -> float:
    """PSNR (dB) of video ``b`` against ``a`` over all frames, decoded (8-bit RGB)."""
    from capture.plate_io import iter_plate_frames, probe_plate

    se, n = 0.0, 0
    for (_, fa), (_, fb) in zip(iter_plate_frames(probe_plate(a)), iter_plate_frames(probe_plate(b)), strict=True):
        se += float(np.mean((fa.astype(np.float64) - fb) ** 2))
        n += 1
    return 10 * np.log10(255.0 ** 2 / max(se / n, 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--work", type=Path, help="keep plate, rig and outputs here (default: a temporary folder)")
    args = ap.parse_args()
    from swap_memory import write_plate  # this folder: on sys.path when run as a script

    from assets.disclosure import Discloser, DisclosureContext, disclose_file
    from assets.media_verify import verify_file
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate

    width, height = (int(x) for x in args.size.lower().split("x"))
    work = args.work or Path(tempfile.mkdtemp(prefix="swap_disclosure_"))
    work.mkdir(parents=True, exist_ok=True)
    rig, plate = work / "rig", work / f"plate_{width}x{height}_{args.frames}.mp4"
    if not (rig / "rig.npz").is_file():
        subprocess.run([sys.executable, "-m", "doppel", "rig", "--out", str(rig), "--force"], check=True,
                       stdout=subprocess.DEVNULL)
    if not plate.is_file():
        write_plate(plate, width, height, args.frames)
    ws, consent = workspace(work / f"ws_{time.time_ns()}")
    ctx = DisclosureContext(ws, "jane", consent.id, "Film", "face_replace", "composite", (plate,), None, "benchmark")
    double = load_face_double(rig, work)
    routes = {"none": None, "re-encode": lambda p: disclose_file(p, ctx), "one encode": Discloser(ctx)}
    swap_plate(plate, double, work / "warmup.mp4", force=True)      # MediaPipe, torch and numba warm-up
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"{width}x{height}, {args.frames} frames, `doppel swap` defaults")
    print("| disclosure | wall s | frames/s | PSNR vs undisclosed (dB) | size (MB) | C2PA | watermark -> record |")
    print("|---|---|---|---|---|---|---|")
    outs = {}
    for name, disclose in routes.items():
        out = outs[name] = work / f"out_{name.replace(' ', '_')}.mp4"
        t = time.perf_counter()
        swap_plate(plate, double, out, force=True, disclose=disclose)
        wall = time.perf_counter() - t
        psnr = "-" if name == "none" else f"{frames_psnr(outs['none'], out):.2f}"
        rep = verify_file(out, ws)
        found = f"seq {rep.watermark.seq}" if rep.watermark.found else "not found"
        print(f"| {name} | {wall:.1f} | {args.frames / wall:.2f} | {psnr} | {out.stat().st_size / 1e6:.1f} | "
              f"{rep.c2pa.state} | {found} |", flush=True)


if __name__ == "__main__":
    main()
