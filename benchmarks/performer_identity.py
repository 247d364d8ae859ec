"""Who is swapped after a cut: the performer told from other people by their face (`capture.face_identity`).

A swap follows the face it picked first by position within a shot; after a cut position says nothing. Three
measures, all in one run:

1. Descriptor distances (dlib's face-recognition model, aligned by MediaPipe's landmarks) of the two real people
   shipped in scikit-image (the astronaut; the cameraman, his head and shoulders) through `plate_from_still`'s
   moves (48 frames each, strength 1), smaller faces (the still at 1/2 and 1/4 of the frame) and a darker grade:
   the same person against the first frame, the other person against it. Under `SAME_PERSON` (0.6) = one person.
2. Edited plates through the swap's tracking pass (`track_shot`), with and without ``identify``: astronaut ->
   cameraman -> astronaut, and cameraman -> astronaut (the performer picked in the first shot, or given by a
   photo of the astronaut: ``--performer-photo``); frames of the performer tracked, frames of the other person
   taken for the performer.
4. The plate actor's face reference, through `doppel swap` in a workspace: the same edited plates swapped under
   ``--plate-actor stunt``, whose reference (`doppel actor face`) is the astronaut's 512 px still, and under an
   actor without one; frames swapped of each person, and a plate that never shows her (refused, nothing written).
3. The cost in profile: a synthetic plate (``doppel capture plate``, its yaw sweep) cut from its near-frontal
   frames to its profile frames (another framing and grade): the profile frames tracked with and without
   ``identify``, the descriptor distance per yaw bin, and the tracking pass's time both ways.

    PYTHONPATH=. python benchmarks/performer_identity.py [--gt-plate DIR]   (DIR: `doppel capture plate --out DIR
    --frames 120 --size 640x360 --renderer raster`; without it part 3 is skipped and says so)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import core.runtime  # noqa: F401  (OpenMP passive before torch)


def photo(name: str, size: int = 384) -> np.ndarray:
    import skimage.data

    if name == "astronaut":
        img = skimage.data.astronaut()
    else:
        img = np.repeat(skimage.data.camera()[0:300, 100:400, None], 3, axis=2)
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))


def framed(img: np.ndarray, fraction: float, gain: float = 1.0) -> np.ndarray:
    """The still at ``fraction`` of its own size in the middle of a grey frame of its size, times ``gain``."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (int(w * fraction), int(h * fraction)), interpolation=cv2.INTER_AREA)
    out = np.full_like(img, 70)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return np.clip(out * gain, 0, 255).astype(np.uint8)


def descriptors(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """The descriptors of the frames' faces (where MediaPipe found one) and the faces' widths (px)."""
    from capture.face_identity import describe
    from capture.face_tracking import PlateTracker

    out, widths = [], []
    with PlateTracker(max_faces=1, hands=False) as t:
        for f in frames:
            faces = t.process(f).faces
            if len(faces):
                out.append(describe(f, faces[0]))
                widths.append(float(np.ptp(faces[0][:, 0])))
    return out, widths


def part1(n: int) -> None:
    from doppel.face_swap.stills import plate_from_still

    print(f"\n## 1. descriptor distance to the first frame ({n} moved frames each; under 0.6 = one person)")
    print(f"{'plate':<34}{'face px':>8}{'found':>6}{'same: median':>14}{'max':>7}{'other: min':>12}{'median':>8}")
    refs = {name: descriptors([photo(name)])[0][0] for name in ("astronaut", "camera")}
    for name, other in (("astronaut", "camera"), ("camera", "astronaut")):
        for label, fraction, gain in (("", 1.0, 1.0), (", 1/2 size", 0.5, 1.0), (", 1/3 size", 1 / 3, 1.0),
                                      (", 1/4 size", 0.25, 1.0), (", darker (x0.5)", 1.0, 0.5)):
            still = framed(photo(name), fraction, gain)
            d, widths = descriptors(list(plate_from_still(still, n, seed=3, strength=1.0)))
            same = [float(np.linalg.norm(x - refs[name])) for x in d]
            cross = [float(np.linalg.norm(x - refs[other])) for x in d]
            if not d:
                print(f"{name + label:<34}{'':>8}{0:>6}   (no face found)")
                continue
            print(f"{name + label:<34}{np.median(widths):>8.0f}{len(d):>6}{np.median(same):>14.3f}{max(same):>7.3f}"
                  f"{min(cross):>12.3f}{np.median(cross):>8.3f}")


def write_plate(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f.{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def tracked(plate: Path, identify: bool, performer=None) -> tuple[np.ndarray, np.ndarray, float, list[int]]:
    """(frames with a face tracked (F,) bool, frames said not the performer's (F,) bool, seconds, cuts)."""
    from capture.plate_io import probe_plate
    from doppel.face_swap.swap import SwapConfig, track_shot

    info = probe_plate(plate)
    t0 = time.perf_counter()
    shot = track_shot(info, SwapConfig(identify=identify), 0, info.frame_count, performer=performer)
    return shot.valid, shot.not_performer, time.perf_counter() - t0, shot.cuts


def part2(work: Path, n: int) -> None:
    import skimage.data

    from capture.face_identity import performer_from_photo
    from doppel.face_swap.stills import plate_from_still

    print(f"\n## 2. edited plates ({n} frames a shot, 384 px): frames tracked as the performer (the first frame's "
          "face, or the person of a photo: the astronaut's 512 px still)")
    print(f"{'plate':<36}{'identify':>9}{'cuts':>10}{'performer tracked':>19}{'other person taken':>20}"
          f"{'said not performer':>20}")
    still = work / "astronaut.png"
    cv2.imwrite(str(still), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    for order in (("astronaut", "camera", "astronaut"), ("camera", "astronaut")):
        frames, names = [], []
        for k, name in enumerate(order):
            frames += list(plate_from_still(photo(name), n, seed=k, strength=1.0))
            names += [name] * n
        plate = write_plate(work / "->".join(order), frames)
        for identify, from_photo in ((False, False), (True, False), (True, True)):
            who = np.array(names) == ("astronaut" if from_photo else order[0])
            valid, other, _, cuts = tracked(plate, identify, performer_from_photo(still) if from_photo else None)
            mode = "photo" if from_photo else "on" if identify else "off"
            print(f"{' -> '.join(order):<36}{mode:>9}{','.join(map(str, cuts)):>10}"
                  f"{f'{(valid & who).sum()}/{who.sum()}':>19}{f'{(valid & ~who).sum()}/{(~who).sum()}':>20}"
                  f"{f'{(other & ~who).sum()}/{(~who).sum()}':>20}")


def studio(root: Path) -> Path:
    """A workspace: 'jane' (a rig, face_replace), 'stunt' (face_replace, a face reference: the astronaut's
    still), 'other' (face_replace, no reference)."""
    import datetime as dt

    import skimage.data

    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace
    from doppel.doubles import build_default_rig

    ws = Workspace.init(root)
    until = dt.date.today() + dt.timedelta(days=9)
    for actor, uses in (("jane", ["rig", "face_replace"]), ("stunt", ["face_replace"]), ("other", ["face_replace"])):
        add_actor(ws, actor.title(), actor_id=actor)
        grant(ws, actor, uses, "Film", until)
    rig, params, _ = build_default_rig("anny", seed=3)
    rig.save(root / "rigs" / "jane", params=params)
    still = root.parent / "stunt_headshot.png"
    cv2.imwrite(str(still), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    doppel("actor", "face", "stunt", still, "--production", "Film", "-W", root)
    return root


def doppel(*args) -> tuple[int, str]:
    """Run the `doppel` CLI in a child process: (exit code, its last line of output)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "doppel", *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip() and not ln.startswith(("W0000", "I0000"))]
    return p.returncode, lines[-1] if lines else ""


def part4(work: Path, n: int) -> None:
    from doppel.face_swap.stills import plate_from_still

    print(f"\n## 4. the plate actor's face reference (`doppel swap` in a workspace, {n} frames a shot, 384 px; "
          "stunt's reference: the astronaut's 512 px still)")
    print(f"{'plate':<32}{'--plate-actor':>15}{'astronaut swapped':>19}{'cameraman swapped':>19}{'seconds':>9}  result")
    roots = {a: studio(work / f"ws_{a}") for a in ("other", "stunt")}   # a plate is one performer's: one each
    for order in (("camera", "astronaut"), ("astronaut", "camera", "astronaut"), ("camera",)):
        frames, names = [], []
        for k, name in enumerate(order):
            frames += list(plate_from_still(photo(name), n, seed=k, strength=1.0))
            names += [name] * n
        plate = write_plate(work / ("ref_" + "->".join(order)), frames)
        hers = np.array(names) == "astronaut"
        for actor, root in roots.items():
            out = work / f"out_{actor}_{'-'.join(order)}"
            t0 = time.perf_counter()
            code, last = doppel("swap", plate, "--double", root / "rigs" / "jane", "--actor", "jane",
                                "--production", "Film", "--plate-actor", actor, "-W", root, "--out", out)
            seconds = time.perf_counter() - t0
            if code == 0:
                tracks = np.load(out.parent / f"{out.name}_swap" / "tracks.npz")
                swapped = tracks["valid"] & ~tracks["face_not_performer"]
                a, c = f"{(swapped & hers).sum()}/{hers.sum()}", f"{(swapped & ~hers).sum()}/{(~hers).sum()}"
                result = "written"
            else:
                a = c = "-"
                result = f"refused, {'nothing' if not out.exists() else 'something'} written: {last[:90]}"
            print(f"{' -> '.join(order):<32}{actor:>15}{a:>19}{c:>19}{seconds:>9.1f}  {result}")


def part3(work: Path, gt: Path) -> None:
    from capture.face_identity import describe
    from capture.face_tracking import PlateTracker

    yaw = np.load(gt / "ground_truth" / "annotations.npz")["head_ypr_deg"][:, 0]
    frames = sorted((gt / "plate" / "frames").glob("*.png"))
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in frames]
    front = [i for i in np.argsort(np.abs(yaw)) if abs(yaw[i]) < 15][:1]
    i0 = front[0]
    print(f"\n## 3. profile after a cut: {gt} ({len(rgb)} frames, yaw {yaw.min():.0f} to {yaw.max():.0f} deg)")
    ref = None
    dist: dict[tuple[int, int], list[float]] = {}
    with PlateTracker(max_faces=1, hands=False) as t:
        for i in [i0, *range(len(rgb))]:
            faces = t.process(rgb[i]).faces
            if not len(faces):
                continue
            d = describe(rgb[i], faces[0])
            if ref is None:
                ref = d
                continue
            lo = min(int(abs(yaw[i]) // 15) * 15, 60)
            dist.setdefault((lo, 90 if lo == 60 else lo + 15), []).append(float(np.linalg.norm(d - ref)))
    print("descriptor distance to a frontal frame, per |yaw| bin: " + "; ".join(
        f"{a}-{b}: median {np.median(v):.2f}, max {max(v):.2f} ({len(v)})" for (a, b), v in sorted(dist.items())))
    # shot 1: the frames within 20 degrees of frontal, in plate order; shot 2: the rest, reframed and graded darker
    near = [i for i in range(len(rgb)) if abs(yaw[i]) < 20]
    far = [i for i in range(len(rgb)) if abs(yaw[i]) >= 20]
    h, w = rgb[0].shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 0, 1.25)
    second = [np.clip(cv2.warpAffine(rgb[i], M, (w, h)) * [0.5, 0.55, 0.65], 0, 255).astype(np.uint8) for i in far]
    plate = write_plate(work / "profile_cut", [rgb[i] for i in near] + second)
    yaw2 = np.abs(yaw[far])
    print(f"{'identify':>9}{'cuts':>8}{'shot 1 tracked':>16}" + "".join(
        f"{f'shot 2 |yaw| {a}-{b}':>22}" for a, b in ((20, 30), (30, 45), (45, 60), (60, 90))) + f"{'seconds':>9}")
    for identify in (False, True):
        valid, _, sec, cuts = tracked(plate, identify)
        v2 = valid[len(near):]
        cols = "".join(f"{f'{v2[(yaw2 >= a) & (yaw2 < b)].sum()}/{((yaw2 >= a) & (yaw2 < b)).sum()}':>22}"
                       for a, b in ((20, 30), (30, 45), (45, 60), (60, 90)))
        print(f"{'on' if identify else 'off':>9}{','.join(map(str, cuts)):>8}"
              f"{f'{valid[:len(near)].sum()}/{len(near)}':>16}{cols}{sec:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames a shot (parts 1-2: 2x this in part 1)")
    ap.add_argument("--gt-plate", type=Path, default=None, help="a `doppel capture plate` folder (part 3)")
    ap.add_argument("--only", type=int, default=None, help="run only this part (1-4)")
    args = ap.parse_args()
    import torch


    torch.set_num_threads(1)
    print(f"# performer_identity: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    def run(part: int) -> bool:
        return args.only in (None, part)

    if run(1):
        part1(2 * args.frames)
    with tempfile.TemporaryDirectory(prefix="doppel_identity_") as tmp:
        if run(2):
            part2(Path(tmp), args.frames)
        if run(3) and args.gt_plate is None:
            print("\n## 3. skipped: no --gt-plate (make one with `doppel capture plate`)")
        elif run(3):
            part3(Path(tmp), args.gt_plate)
        if run(4):
            part4(Path(tmp), args.frames)


if __name__ == "__main__":
    main()
