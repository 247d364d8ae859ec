"""Face replacement benchmark: Doppel's 3D route vs the classical 2D route (Delaunay warp + seamlessClone), same run.

    PYTHONPATH=. python benchmarks/face_swap.py [--quick] [--rig RIG_DIR] [--speed] [--out DIR]

Real photographs (scikit-image's astronaut and camera, animated into plates by smooth similarity and perspective
warps): MediaPipe landmarks on the output vs on the plate (mean error / inter-ocular distance), jitter (RMS second
difference over time of output - plate landmarks, / inter-ocular distance), colour shift just inside the seam
(CIEDE2000 between output and plate in the 6 px band inside the face outline), frames flagged by the QC.
--plate-dir DIR: a synthetic plate with ground truth (`doppel capture plate`): PSNR and FLIP inside the ground
truth's face mask, MediaPipe landmarks of the output vs of the ground truth (mean / inter-ocular distance), jitter,
colour difference just inside the face mask's edge (CIEDE2000 vs the ground truth), per |yaw| bin; rows for the
3D route, the 2D baseline, an *ideal tracker* (the 3D route fed the performer's exact landmarks, when the plate
records them: what any swap that follows the performer's face reaches) and the floor (the ground truth re-encoded);
`--flame`: also the 3D route with a FLAME-format copy of the double's head (`doppel.synthetic_flame`).
--speed: frames per second of `swap_plate` at 1280x720 and 1920x1080 (the head drawn where `--device auto` puts
it; `--option device=cpu` or `device=cuda` to choose: the GPU figure when a GPU is lent); `--workers 1,2 --rounds
3`: those thread counts (`SwapConfig.workers`) compared in the same run, alternating; `--grain 3`: noisy plates.
Prints one table per plate; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.runtime  # noqa: F401  (OpenMP passive before torch)


def _still(name: str, size: int):
    import cv2
    import numpy as np
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames, fps: float = 24.0) -> None:
    import imageio_ffmpeg
    import numpy as np

    h, w = frames[0].shape[:2]
    wr = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1, quality=9,
                                     ffmpeg_log_level="error")
    wr.send(None)
    for f in frames:
        wr.send(np.ascontiguousarray(f))
    wr.close()


def landmarks_of(frames):
    """(F, 478, 2) MediaPipe landmarks (NaN where no face) of a frame list, tracked in video mode: the measuring
    instrument of every stop's figures, so without the swap's second look (`PlateTracker(second_look=)`, stop
    49), which reads better and would move the floor and every route's figures with it."""
    import numpy as np

    from capture.face_tracking import PlateTracker

    out = np.full((len(frames), 478, 2), np.nan)
    with PlateTracker(max_faces=1, hands=False, second_look=False) as t:   # small faces on crops, as before
        for i, f in enumerate(frames):
            face = t.process(f).face(0)
            if face is not None:
                out[i] = face
    return out


def seam_delta_e(out, plate, lm, band: int = 6) -> float:
    """Mean CIEDE2000 between output and plate in the band px just inside the face outline (landmark hull)."""
    import cv2
    import numpy as np

    from neural_render.face_composite import delta_e_2000, lab, polygon_mask

    m = polygon_mask(out.shape[:2], lm).astype(np.uint8)
    inner = cv2.erode(m, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    sel = (m > 0) & (inner == 0)
    if not sel.any():
        return float("nan")
    return float(delta_e_2000(lab(out)[sel], lab(plate)[sel]).mean())


def score(outputs, plate_frames, ref_lm, mattes=None):
    """Metrics of output frames against the plate's landmarks; with the route's blend masks (mattes), also the
    seam at the matte's edge where the plate is continuous (`seam_difference`)."""
    import numpy as np

    from neural_render.face_composite import seam_difference
    from reconstruction.head_tracking import inter_ocular

    got = landmarks_of(outputs)
    ok = np.isfinite(got).all((1, 2)) & np.isfinite(ref_lm).all((1, 2))
    iod = inter_ocular(np.nan_to_num(ref_lm))
    err = np.linalg.norm(got - ref_lm, axis=-1).mean(-1) / np.maximum(iod, 1)
    d = (got - ref_lm) / np.maximum(iod, 1)[:, None, None]
    dd = d[2:] - 2 * d[1:-1] + d[:-2]
    okk = ok[2:] & ok[1:-1] & ok[:-2]
    jitter = float(np.sqrt((dd[okk] ** 2).sum(-1).mean())) if okk.any() else float("nan")
    seam = [seam_delta_e(o, p, ref_lm[i]) for i, (o, p) in enumerate(zip(outputs, plate_frames, strict=True))
            if ok[i]]
    mattes = mattes if mattes is not None else [None] * len(outputs)
    edge = [seam_difference(o, m, reference=p)[0] for o, m, p in zip(outputs, mattes, plate_frames, strict=True)
            if m is not None and m.max() > 0.5]
    return {"landmark_err_iod": float(np.nanmean(err[ok])) if ok.any() else float("nan"), "jitter_iod": jitter,
            "seam_dE2000": float(np.nanmean(seam)) if seam else float("nan"), "found": int(ok.sum()),
            "seam_edge": float(np.nanmean(edge)) if edge else float("nan")}


def run_plate(name: str, frames, double, work: Path, options: dict | None = None) -> dict:
    import cv2
    import numpy as np

    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.face_swap.baseline2d import frontal_face, swap_frame_2d
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig

    plate = work / f"{name}.mp4"
    write_video(plate, frames)
    plate_frames = [f for _, f in iter_plate_frames(probe_plate(plate))]
    ref = landmarks_of(plate_frames)
    rows = {}
    t = time.perf_counter()
    res = swap_plate(plate, double, work / f"{name}_3d.mp4", SwapConfig(**{"blend": "poisson", "matte": True,
                                                                          **(options or {})}), force=True)
    t3 = time.perf_counter() - t
    out3 = [f for _, f in iter_plate_frames(probe_plate(work / f"{name}_3d.mp4"))]
    mattes = [cv2.imread(str(m), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
              for m in sorted((side_folder(work / f"{name}_3d.mp4") / "matte").glob("*.png"))]
    rows["3D (Doppel)"] = {**score(out3, plate_frames, ref, mattes), "flagged": len(res.flagged),
                           "fps": len(out3) / t3}
    face = frontal_face(double)
    t = time.perf_counter()
    two = [swap_frame_2d(face, p, ref[i], with_mask=True) if np.isfinite(ref[i]).all() else (p, None)
           for i, p in enumerate(plate_frames)]
    t2 = time.perf_counter() - t
    rows["2D baseline"] = {**score([o for o, _ in two], plate_frames, ref, [m for _, m in two]),
                           "flagged": float("nan"), "fps": len(two) / t2}
    return rows


YAW_BINS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 90))


def _gt_frame_metrics(out, gt, mask):
    """(psnr dB, FLIP mean, seam dE00) of an output frame vs the ground truth inside the face mask (bool)."""
    import cv2
    import flip_evaluator
    import numpy as np

    from neural_render.face_composite import delta_e_2000, lab

    if mask.sum() < 16:
        return float("nan"), float("nan"), float("nan")
    o, g = out.astype(np.float64) / 255, gt.astype(np.float64) / 255
    mse = ((o - g) ** 2)[mask].mean()
    psnr = float(10 * np.log10(1 / max(mse, 1e-12)))
    fmap = flip_evaluator.evaluate(g.astype(np.float32), o.astype(np.float32), "LDR", applyMagma=False)[0]
    flip = float(np.asarray(fmap).reshape(mask.shape + (-1,))[..., 0][mask].mean())
    inner = cv2.erode(mask.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0
    band = mask & ~inner
    seam = float(delta_e_2000(lab(out)[band], lab(gt)[band]).mean()) if band.any() else float("nan")
    return psnr, flip, seam


def placement(placed, ann, ids):
    """(error (F,), jitter (F,)) in inter-ocular distances of where a route put the double's landmarks, placed
    (F, L, 2) px (rows: MediaPipe ids ``ids``; NaN where nothing was placed), against the exact ground-truth
    landmarks (``annotations.npz`` landmarks2d, visible points only): no detector runs on the output. The 3D
    route's are its track's projections (the rendered face's landmarks), the 2D route's the plate's MediaPipe
    landmarks (where its warp pins the double's)."""
    import numpy as np

    from reconstruction.head_tracking import inter_ocular

    exact, vis = ann["landmarks2d"][:, ids], ann["landmarks_visible"][:, ids]
    d = (placed - exact) / inter_ocular(ann["landmarks2d"])[:, None, None]
    w = vis & np.isfinite(d).all(-1)
    err = np.array([np.linalg.norm(d[i][w[i]], axis=-1).mean() if w[i].any() else np.nan for i in range(len(d))])
    dd, ww = d[2:] - 2 * d[1:-1] + d[:-2], w[2:] & w[1:-1] & w[:-2]
    jit = np.full(len(d), np.nan)
    jit[1:-1] = [np.sqrt((dd[i][ww[i]] ** 2).sum(-1).mean()) if ww[i].any() else np.nan for i in range(len(dd))]
    return err, jit


def track_landmarks(double, tracks_npz):
    """(F, 478, 2) px: the double's face landmarks as the 3D route rendered them (its tracks.npz; rows: MediaPipe
    ids), NaN where no face and at ids the double has no landmark for."""
    import numpy as np

    from doppel.face_swap.render_head import project

    t = np.load(tracks_npz)
    out = np.full((len(t["valid"]), 478, 2), np.nan)
    for f in np.flatnonzero(t["valid"]):
        out[f, double.basis.ids] = project(double.basis.points(t["expression"][f]), t["rotation"][f],
                                           t["translation"][f], t["K"])
    return out


def flame_format_double(rig, work: Path):
    """The FaceDouble of a FLAME-format copy of ``rig``'s head (`doppel.synthetic_flame`), rigged as `doppel rig
    --model flame` rigs it."""
    from doppel.doubles import build_default_rig, flame_embedding_for
    from doppel.face_swap.double import load_face_double
    from doppel.synthetic_flame import write_flame_head

    model_file = write_flame_head(rig, work / "flame_model")
    r, params, inputs = build_default_rig("flame", seed=0, model_file=model_file)
    rig_dir = r.save(work / "gt_double_flame", params=params)
    emb = flame_embedding_for("flame", inputs)
    (rig_dir / emb.name).write_bytes(emb.read_bytes())
    return load_face_double(rig_dir, work)


def run_gt_plate(plate_dir: Path, work: Path, quick: bool, colours: tuple[str, ...] = ("lab",),
                 blend: str = "poisson", options: dict | None = None, flame: bool = False) -> dict:
    """Both routes on a `doppel capture plate` folder, scored against its ground truth, per |yaw| bin, and the
    measure's floor: the ground-truth frames themselves through the same H.264 encoding as the outputs (what
    MediaPipe's landmark error and jitter read on an image that is the ground truth to the eye). Seam:
    `seam_difference` at each route's own blend-mask edge, where the plate is continuous (the issue's "inside vs
    outside the mask edge"); "dE vs GT": output vs ground truth in the 6 px band inside the ground truth's face
    mask (colour fidelity, not seam visibility). flame: also the 3D route with a FLAME-format copy of the double's
    head (`flame_format_double`); every route's placement is then scored on the landmarks both doubles have."""
    import json

    import cv2
    import numpy as np

    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.doubles import build_default_rig
    from doppel.face_swap.baseline2d import frontal_face, swap_frame_2d
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from neural_render.face_composite import seam_difference
    from reconstruction.head_tracking import inter_ocular

    summary = json.loads((plate_dir / "ground_truth" / "annotations.json").read_text())
    cams = json.loads((plate_dir / "plate" / "cameras.json").read_text())
    ann = np.load(plate_dir / "ground_truth" / "annotations.npz")
    r, params, _ = build_default_rig("anny", seed=int(summary["double_seed"]))
    double = load_face_double(r.save(work / "gt_double", params=params), work)
    plate = plate_dir / "plate" / "plate.mp4"
    info = probe_plate(plate)
    plate_frames = [f for _, f in iter_plate_frames(info)]
    gt = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
          for p in sorted((plate_dir / "ground_truth" / "frames").glob("*.png"))]
    masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127
             for p in sorted((plate_dir / "ground_truth" / "masks").glob("face_*.png"))]
    routes = []
    # the ideal tracker: the 3D route fed the performer's exact landmarks (a perfect detector; plates made before
    # annotations.npz had them lack this row). The performer's face is not the double's, so even this lands the
    # double's face off the ground truth's (A's head carried to B's neck at A's size): the floor of any swap
    # that follows the performer's face, which is what the landmark goals can be read against.
    ideal = ann["performer_landmarks2d"] if "performer_landmarks2d" in ann.files else None
    if ideal is None:
        print(f"{plate_dir}: no performer_landmarks2d in annotations.npz (an older plate): no ideal-tracker row")
    runs = [("3D", double, c, None) for c in colours] + ([("3D", double, colours[0], ideal)] if ideal is not None
                                                           else [])
    if flame:
        runs.append(("3D FLAME-fmt", flame_format_double(r, work), colours[0], None))
    for label, dbl, colour, given in runs:
        t = time.perf_counter()
        out_path = work / f"gt_{label.replace(' ', '_')}_{colour}{'' if given is None else '_ideal'}.mp4"
        swap_plate(plate, dbl, out_path, force=True, landmarks=given, cfg=SwapConfig(**{
            "focal_px": float(cams["frames"][0]["K"][0][0]), "colour": colour, "blend": blend, "matte": True,
            **(options or {})}))
        t3 = time.perf_counter() - t
        out3 = [f for _, f in iter_plate_frames(probe_plate(out_path))]
        mattes = [cv2.imread(str(m), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
                  for m in sorted((side_folder(out_path) / "matte").glob("*.png"))]
        routes.append((f"{label} {colour}" if given is None else "ideal tracker", out3, mattes, len(out3) / t3,
                       track_landmarks(dbl, side_folder(out_path) / "tracks.npz")))
    ref_plate = landmarks_of(plate_frames)
    face = frontal_face(double)
    two = [swap_frame_2d(face, p, ref_plate[i], with_mask=True) if np.isfinite(ref_plate[i]).all()
           else (p, np.zeros(p.shape[:2], np.float32)) for i, p in enumerate(plate_frames)]
    out2, mattes2 = [o for o, _ in two], [m for _, m in two]
    gt_lm = landmarks_of(gt)
    yaw = np.abs(ann["head_ypr_deg"][:, 0])
    rows = {}
    ids = np.intersect1d(double.basis.ids, runs[-1][1].basis.ids)     # all of them unless a FLAME double ran
    write_video(work / "gt_reencoded.mp4", gt)      # the measure's floor: the ground truth itself, through H.264
    floor = [f for _, f in iter_plate_frames(probe_plate(work / "gt_reencoded.mp4"))]
    # the floor row's "placed" columns: MediaPipe on the ground truth against the exact landmarks, the detector's
    # own error and jitter on a true image (what the measure adds to any output that is not the GT itself)
    for route, outs, mattes, fps, placed in [*routes, ("2D baseline", out2, mattes2, float("nan"), ref_plate),
                                             ("floor: GT.mp4", floor, [np.zeros(m.shape, np.float32) for m in masks],
                                              float("nan"), gt_lm)]:
        p_err, p_jit = placement(placed[:, ids], ann, ids)
        lm = landmarks_of(outs)
        iod = np.maximum(inter_ocular(np.nan_to_num(gt_lm)), 1)
        err = np.linalg.norm(lm - gt_lm, axis=-1).mean(-1) / iod
        d = (lm - gt_lm) / iod[:, None, None]
        jit = np.full(len(outs), np.nan)
        jit[1:-1] = np.sqrt(((d[2:] - 2 * d[1:-1] + d[:-2]) ** 2).sum(-1).mean(-1))
        m = np.array([_gt_frame_metrics(o, g, k) for o, g, k in zip(outs, gt, masks, strict=True)])
        edge = np.array([seam_difference(o, mt, reference=p) for o, mt, p in zip(outs, mattes, plate_frames,
                                                                                  strict=True)])
        for lo, hi in YAW_BINS:
            sel = (yaw >= lo) & (yaw < hi)
            if sel.any():
                rows[(route, f"{lo}-{hi}")] = {
                    "frames": int(sel.sum()), "psnr": np.nanmean(m[sel, 0]), "flip": np.nanmean(m[sel, 1]),
                    "lm_err_iod": np.nanmean(err[sel]), "jitter_iod": np.nanmean(jit[sel]),
                    "seam_dE2000": np.nanmean(m[sel, 2]), "lm_found": int(np.isfinite(err[sel]).sum()), "fps": fps,
                    "seam_edge": np.nanmean(edge[sel, 0]), "edge_share": np.nanmean(edge[sel, 1]),
                    "place_err": np.nanmean(p_err[sel]), "place_jitter": np.nanmean(p_jit[sel])}
    return rows


def print_gt(rows: dict) -> None:
    print(f"{'route':<18}{'|yaw|':>7}{'n':>4}{'PSNR':>7}{'FLIP':>7}{'lm err':>8}{'(found)':>8}{'jitter':>8}"
          f"{'seam dE':>9}{'(edge)':>8}{'dE vs GT':>10}{'placed err':>11}{'jitter':>8}")
    for (route, b), v in rows.items():
        print(f"{route:<18}{b:>7}{v['frames']:>4}{v['psnr']:>7.2f}{v['flip']:>7.3f}{v['lm_err_iod']:>8.4f}"
              f"{v['lm_found']:>8}{v['jitter_iod']:>8.4f}{v['seam_edge']:>9.2f}{v['edge_share']:>8.0%}"
              f"{v['seam_dE2000']:>10.2f}{v['place_err']:>11.4f}{v['place_jitter']:>8.4f}")


def speed(double, work: Path, frames: int, options: dict | None = None, workers: list[int] | None = None,
          rounds: int = 1, grain: float = 0.0) -> dict:
    """{"WxH": [frames/s per round]} of `swap_plate` at 720p and 1080p; with ``workers`` (thread counts) keys
    "WxH workers=N", the counts alternated in each round so they share the machine's state. grain: Gaussian
    noise (sigma, 8-bit levels) added to the plate's frames, as film grain or sensor noise would be."""
    import cv2
    import numpy as np

    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.stills import plate_from_still
    from doppel.face_swap.swap import SwapConfig

    out = {}
    for w, h in ((1280, 720), (1920, 1080)):
        face = _still("astronaut", h)
        canvas = np.full((h, w, 3), 60, np.uint8)
        canvas[:, (w - h) // 2:(w - h) // 2 + h] = face
        plate = work / f"speed_{h}.mp4"
        rng = np.random.default_rng(0)
        write_video(plate, [np.clip(f + rng.normal(0, grain, f.shape), 0, 255).astype(np.uint8) if grain > 0 else f
                            for f in plate_from_still(canvas, frames, seed=1, strength=0.5)])
        for _ in range(rounds):
            for n in workers or [None]:
                opts = {**(options or {}), **({} if n is None else {"workers": n})}
                t = time.perf_counter()
                swap_plate(plate, double, work / f"speed_{h}_out.mp4", SwapConfig(**opts), force=True)
                key = f"{w}x{h}" + ("" if n is None else f" workers={n}")
                out.setdefault(key, []).append(frames / (time.perf_counter() - t))
                cv2.setNumThreads(0)
    return out


def swap_options(items: list[str] | None) -> dict:
    """--option NAME=VALUE items -> SwapConfig overrides, each value parsed as its field's type."""
    import dataclasses

    from doppel.face_swap.swap import SwapConfig

    types = {f.name: type(f.default) for f in dataclasses.fields(SwapConfig)}
    out = {}
    for item in items or []:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"--option {item}: not a SwapConfig field ({', '.join(types)})")
        kind = types[name]
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else (
            value if kind is str or value == "" else float(value) if kind in (float, type(None)) else kind(value))
    print(f"3D route options: {out}" if out else "3D route options: defaults")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="24-frame plates at 384 px (default 48 at 512)")
    ap.add_argument("--rig", type=Path, help="the double's rig folder (default: the virtual actor, seed 0)")
    ap.add_argument("--speed", action="store_true", help="also measure frames/s at 720p and 1080p")
    ap.add_argument("--workers", help="with --speed: thread counts to compare in the same run, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=1, help="with --speed: times each is measured, alternating")
    ap.add_argument("--grain", type=float, default=0.0, help="with --speed: grain (noise sigma, 8-bit levels) on the "
                    "plates; real plates have some, and it makes them costlier to decode and encode")
    ap.add_argument("--out", type=Path, help="keep the plates and outputs here")
    ap.add_argument("--plate-dir", type=Path, help="a `doppel capture plate` folder: score against its ground truth")
    ap.add_argument("--colours", default="lab,luma", help="colour modes of the 3D route on --plate-dir")
    ap.add_argument("--blend", default="poisson", help="blend of the 3D route on --plate-dir")
    ap.add_argument("--skip-stills", action="store_true", help="skip the astronaut / camera plates")
    ap.add_argument("--flame", action="store_true", help="on --plate-dir, also the 3D route with a FLAME-format copy "
                    "of the double's head (placement then scored on the landmarks both have)")
    ap.add_argument("--option", action="append", metavar="NAME=VALUE",
                    help="override a SwapConfig field of the 3D route (repeatable; ablations, e.g. debias=false)")
    args = ap.parse_args()
    import numpy as np
    import torch

    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.stills import plate_from_still

    torch.set_num_threads(1)
    n, size = (24, 384) if args.quick else (48, 512)
    options = swap_options(args.option)
    work = args.out or Path(tempfile.mkdtemp(prefix="doppel_swap_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    rig = args.rig
    if rig is None:
        from doppel.doubles import build_default_rig

        r, params, _ = build_default_rig("anny", seed=0)
        rig = r.save(work / "rig", params=params)
    double = load_face_double(rig, work)
    print(f"# face_swap benchmark: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; plates {n} frames at {size} px")
    if args.plate_dir:
        print(f"\n## synthetic plate with ground truth: {args.plate_dir}")
        print_gt(run_gt_plate(args.plate_dir, work, args.quick, tuple(args.colours.split(",")), args.blend, options,
                              args.flame))
    for name in () if args.skip_stills else ("astronaut", "camera"):
        frames = list(plate_from_still(_still(name, size), n, seed=0, strength=1.0))
        rows = run_plate(name, frames, double, work, options)
        print(f"\n## {name} ({n} frames, {size} px)")
        print(f"{'route':<14}{'found':>6}{'lm err/IOD':>12}{'jitter/IOD':>12}{'seam (edge)':>12}{'dE vs plate':>12}"
              f"{'flagged':>9}{'fps':>7}")
        for k, v in rows.items():
            print(f"{k:<14}{v['found']:>6}{v['landmark_err_iod']:>12.4f}{v['jitter_iod']:>12.4f}"
                  f"{v['seam_edge']:>12.2f}{v['seam_dE2000']:>12.2f}{v['flagged']:>9.0f}{v['fps']:>7.2f}")
    if args.speed:
        counts = [int(n) for n in args.workers.split(",")] if args.workers else None
        for k, v in speed(double, work, 24 if args.quick else 48, options, counts, args.rounds, args.grain).items():
            print(f"speed {k}: {' / '.join(f'{x:.2f}' for x in v)} frames/s (swap_plate end to end, 1 torch "
                  f"thread{'' if len(v) == 1 else f'; median {float(np.median(v)):.2f}'})")
    np.set_printoptions()


if __name__ == "__main__":
    main()
