"""A plate swapped in its own colour space or in the default reading of its files: how the face sits in the graded
picture.

Film and digital-cinema plates arrive log-encoded (ARRI LogC, S-Log3, Cineon/ADX scans) as 10-bit DPX, or scene-
linear in the ACES working gamut (ACEScg EXRs). Read by default (a DPX's codes as display values, an EXR as linear
Rec.709), the swap tracks a flat or desaturated picture and matches the double's face to it there; read through
OpenColorIO with `--plate-colorspace`, it works on sRGB and puts the face back in the plate's encoding. This script
makes a 10-bit ARRI LogC3 (EI 800) DPX plate, the same as 10-bit ProRes HQ, and a half-float ACEScg EXR plate of the
astronaut photograph moved by the real-photo plates' warps, swaps each both ways with the same double, and scores
the outputs in the graded view (the plate's space -> sRGB through OCIO, what a colourist and the audience see): the
seam (mean CIEDE2000 across the blend matte's edge, 6 px bands, where the plate is continuous), the face's colour
against the performer's (mean CIEDE2000 between the mean CIELAB inside the matte, swapped vs plate), frames swapped
and landmark agreement from the swap's QC; and how far the pixels outside the matte are from the plate's (DPX and
ProRes codes in 10-bit levels, EXR values): 0 for frame files, the re-encode's rounding for a video.

With --speed: the swap's frames per second at 1920x1080 (24 grainy frames) on the same picture as an H.264 MP4,
10-bit LogC3 DPX frames, the same as 10-bit ProRes HQ and half-float ACEScg EXR frames (each with its colour space),
the kinds alternated in each round.

    PYTHONPATH=. python benchmarks/plate_colourspace.py [--frames 12] [--size 512] [--speed [--rounds 2]]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

PLATES = {"10-bit DPX": ("ARRI LogC3 (EI800)", ".dpx"), "half-float EXR": ("ACEScg", ".exr"),
          "10-bit ProRes HQ": ("ARRI LogC3 (EI800)", ".mov")}


def make_plate(folder: Path, frames: int, size: int, colorspace: str, suffix: str, pictures=None) -> Path:
    """A plate of ``frames`` frames of the astronaut (``size`` px square) moved by the real-photo warps, or of
    ``pictures`` (sRGB uint8 frames), in ``colorspace`` as DPX or EXR files in ``folder``, or (.mov) as a 10-bit
    ProRes HQ video beside it made from DPX frames. Returns the plate."""
    if suffix == ".mov":
        import subprocess

        import imageio_ffmpeg

        make_plate(folder, frames, size, colorspace, ".dpx", pictures)
        video = folder.with_suffix(".mov")
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-start_number", "1001", "-i",
                        str(folder / "sh010.%04d.dpx"), "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt",
                        "yuv422p10le", str(video)], check=True)
        return video
    import cv2
    import OpenEXR
    import OpenImageIO as oiio
    import skimage.data

    from capture.dpx_frames import write_dpx
    from capture.plate_colour import from_working
    from doppel.face_swap.stills import plate_from_still

    folder.mkdir(parents=True)
    if pictures is None:
        still = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
        pictures = plate_from_still(still, frames, seed=0, strength=0.2)
    for i, frame in enumerate(pictures):
        h, w = frame.shape[:2]
        values = from_working(frame, colorspace)
        if suffix == ".exr":
            with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                              {c: values[..., k].astype(np.float16) for k, c in enumerate("RGB")}) as f:
                f.write(str(folder / f"sh010.{1001 + i}.exr"))
            continue
        spec = oiio.ImageSpec(w, h, 3, oiio.UINT16)
        spec.attribute("oiio:BitsPerSample", 10)
        spec.attribute("dpx:Transfer", "Logarithmic")
        write_dpx(folder / f"sh010.{1001 + i}.dpx", np.round(np.clip(values, 0, 1) * 65535).astype(np.uint16), spec)
    return folder


def frames_of(plate: Path, colorspace: str):
    """(the frame's own samples as floats: DPX and ProRes codes in 10-bit levels, EXR values; its graded view,
    (H, W, 3) uint8) for every frame of a frame folder or a video."""
    import OpenEXR

    from capture.dpx_frames import read_dpx
    from capture.frame_files import read_frame
    from capture.plate_colour import display_of_codes
    from capture.plate_io import _video_frames, probe_plate

    if plate.is_file():
        info = probe_plate(plate)
        for _, codes in _video_frames(info, 0, info.frame_count, np.uint16):
            yield codes / 64.0, display_of_codes(codes, colorspace)
        return
    for path in sorted(plate.iterdir()):
        if path.suffix == ".dpx":
            values = read_dpx(path)[0] / 64.0
        else:
            with OpenEXR.File(str(path), separate_channels=True) as f:
                values = np.stack([np.asarray(f.channels()[c].pixels, np.float64) for c in "RGB"], -1)
        yield values, read_frame(path, colorspace)


def evaluate(plate: Path, out: Path, result, colorspace: str) -> dict:
    import cv2

    from doppel.face_swap.side_folder import side_folder
    from neural_render.face_composite import delta_e_2000, lab, seam_difference

    seams, tones, outside = [], [], []
    for qc, (src, plate_view), (got, view) in zip(result.frames, frames_of(plate, colorspace),
                                                  frames_of(out, colorspace), strict=True):
        matte_file = side_folder(out) / "matte" / f"{qc.frame:06d}.png"
        matte = cv2.imread(str(matte_file), cv2.IMREAD_GRAYSCALE) / 255.0 if qc.swapped and matte_file.exists() \
            else np.zeros(src.shape[:2])
        outside.append(float(np.abs(got - src)[matte == 0].mean()))
        if not matte.any():
            continue
        seam, _ = seam_difference(view, matte, 6, reference=plate_view)
        seams.append(seam)
        inside = matte > 0.5
        tones.append(float(delta_e_2000(lab(view)[inside].mean(0), lab(plate_view)[inside].mean(0))))
    errors = [q.error for q in result.frames if q.swapped]
    return {"swapped": sum(q.swapped for q in result.frames), "frames": len(result.frames),
            "seam_de": float(np.nanmean(seams)) if seams else float("nan"),
            "tone_de": float(np.mean(tones)) if tones else float("nan"),
            "landmark_iod": float(np.nanmean(errors)) if errors else float("nan"), "outside": float(np.mean(outside))}


def speed(double, work: Path, rounds: int, frames: int = 24) -> dict[str, list[float]]:
    """{plate kind: [frames/s a round]} of `swap_plate` on one 1920x1080 grainy picture as MP4, DPX and EXR."""
    import cv2
    import imageio_ffmpeg
    import skimage.data

    from capture.plate_io import probe_plate
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.stills import plate_from_still
    from doppel.face_swap.swap import SwapConfig

    canvas = np.full((1080, 1920, 3), 60, np.uint8)
    canvas[:, 420:1500] = cv2.resize(skimage.data.astronaut(), (1080, 1080), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    pictures = [np.clip(f + rng.normal(0, 3.0, f.shape), 0, 255).astype(np.uint8)
                for f in plate_from_still(canvas, frames, seed=1, strength=0.5)]
    mp4 = work / "speed.mp4"
    wr = imageio_ffmpeg.write_frames(str(mp4), (1920, 1080), fps=24, macro_block_size=1, quality=9,
                                     ffmpeg_log_level="error")
    wr.send(None)
    for f in pictures:
        wr.send(np.ascontiguousarray(f))
    wr.close()
    plates = {"H.264 MP4": (mp4, None, work / "speed_out.mp4")}
    for kind, (space, suffix) in PLATES.items():
        plate = make_plate(work / f"speed_{suffix[1:]}", frames, 0, space, suffix, pictures)
        plates[f"{space} {kind}"] = (plate, space, work / f"speed_{suffix[1:]}_out{'.mov' if plate.is_file() else ''}")
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for kind, (plate, space, dest) in plates.items():
            t0 = time.perf_counter()
            swap_plate(plate, double, dest, SwapConfig(), force=True, plate_info=probe_plate(plate, colorspace=space))
            out.setdefault(kind, []).append(frames / (time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--speed", action="store_true", help="frames/s at 1080p: MP4 vs DPX vs EXR frames")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from capture.plate_io import probe_plate
    from doppel.doubles import build_default_rig
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.swap import SwapConfig

    work = args.out or Path(tempfile.mkdtemp(prefix="doppel_plate_cs_"))
    print(f"# plate colour space: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; {args.frames} frames at {args.size} px a plate")
    r, params, _ = build_default_rig("anny", seed=0)
    double = load_face_double(r.save(work / "rig", params=params), work)
    if args.speed:
        import torch

        torch.set_num_threads(1)                   # as benchmarks/face_swap.py --speed
        for kind, fps in speed(double, work, args.rounds).items():
            print(f"| 1920x1080 {kind} | " + " / ".join(f"{v:.2f}" for v in fps) + " frames/s |", flush=True)
        return
    print("| plate | read as | frames swapped | seam CIEDE2000 (graded) | face tone vs performer CIEDE2000 | "
          "landmark agreement (IOD) | outside the matte: mean abs(output - plate) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, (space, suffix) in PLATES.items():
        plate = make_plate(work / f"plate_{suffix[1:]}", args.frames, args.size, space, suffix)
        for colorspace in (None, space):
            out = work / f"swap_{suffix[1:]}_{'ocio' if colorspace else 'default'}{suffix if plate.is_file() else ''}"
            t0 = time.perf_counter()
            result = swap_plate(plate, double, out, SwapConfig(matte=True),
                                plate_info=probe_plate(plate, colorspace=colorspace))
            row = evaluate(plate, out, result, space)
            label = f"--plate-colorspace '{space}'" if colorspace else "default (no colour space)"
            print(f"| {space} {kind} | {label} | {row['swapped']}/{row['frames']} | {row['seam_de']:.2f} | "
                  f"{row['tone_de']:.2f} | {row['landmark_iod']:.3f} | {row['outside']:.3g} | "
                  f"{time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
