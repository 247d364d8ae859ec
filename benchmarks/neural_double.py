"""Benchmark of issue 15: the neural double against the CGI baseline on held-out views and novel poses.

    PYTHONPATH=. python benchmarks/neural_double.py                       # ~5-6 min: synthetic capture, 3 min training
    PYTHONPATH=. python benchmarks/neural_double.py --minutes 15          # the issue's CPU budget (15 min at 256 px)
    PYTHONPATH=. python benchmarks/neural_double.py --capture DIR         # a capture folder (session/ + ground_truth/),
                                                                          # e.g. the Cycles one of the Cycles issue
    PYTHONPATH=. python benchmarks/neural_double.py --device cuda --size 1024 --minutes 5   # GPU path (when lent one)
    PYTHONPATH=. python benchmarks/neural_double.py --capture DIR --fit FIT --model MODEL   # evaluate a trained model

Steps (all on the product path: doppel.render_ensemble.train_ensemble is what `doppel render train` runs):
1. capture: ``--capture DIR`` or a raster synthetic capture of the virtual actor (doppel.synthetic_capture: 16 views
   at ``--capture-size``, with ``--novel-poses`` more frames of its smooth motion for the novel-pose test);
2. fit: ``--fitter ground_truth`` (default: the capture's ground-truth mesh as the fit, because Doppel's session fit
   takes minutes on this machine) or ``--fitter doppel`` (`doppel capture ingest` + `doppel fit`, frame 000);
3. train on frame 000 with 2 of the 16 views held out (``--holdout``), ``--size`` px, one torch thread on the CPU,
   for ``--minutes``; the training curve (held-out PSNR against time) is printed; ``--members N`` trains N models
   at once, one process (core) each, drawn as their mean (`doppel render train --members N`);
4. held-out views: PSNR and SSIM inside the person mask and FLIP (flip-evaluator, LDR; mean over the mask and over
   the whole image) for the CGI baseline (the baked texture, unlit) and the neural renderer (both drawn on
   ``--device``; on CUDA with bfloat16 autocast), composited over
   the photo's backdrop colour (plus a reference row: the CGI baseline with 2x anti-aliased edges, and with
   ``--jitter N`` the baseline drawn with the same jitter as the neural renderer); novel poses:
   the later frames' photos against both renderers drawn on the same mesh: with a Doppel fit (``--novel-mesh
   auto``) the fit posed by its rig into the frame's pose (``rig_posed_fit``: the known motion as joint rotations
   on top of the fit's pose, the fit's shape and detail kept, so its errors are in the mesh as they would be in a
   shot), with the ground-truth fit (or ``--novel-mesh ground_truth``) the capture's ground-truth meshes;
5. CPU ms/frame at 512 px (neural and CGI, including rasterization), and peak training memory (max RSS of a child
   process training 5 steps) at 512 px.
Results: WORK/results.json and WORK/compare.png (rows: photo | CGI | neural | CGI error x4 | neural error x4).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _contention  # noqa: F401 - first: Doppel's core before torch (benchmarks/_contention.py)
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOLDOUT = "ring03,face01"


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0] if Path("/proc/loadavg").exists() else "n/a"


def make_capture(work: Path, cameras: int, size: int, novel: int) -> Path:
    from doppel.synthetic_capture import synthesize_capture

    t0 = time.perf_counter()
    synthesize_capture(work / "capture", n_cameras=cameras, size=size, frames=1 + novel)
    print(f"capture: {cameras} views x {1 + novel} frame(s) at {size} px in {time.perf_counter() - t0:.1f} s "
          f"(load {_load()})")
    return work / "capture"


def ground_truth_fit(capture: Path, out: Path) -> Path:
    """A fit folder whose mesh is the capture's ground truth (frame 000), registered as the virtual actor's."""
    import shutil

    from core.storage import write_manifest

    gt = json.loads((capture / "ground_truth" / "params.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.json").write_text(json.dumps({"model": "anny", "source": "ground_truth",
                                                 "shape": gt.get("phenotype", {}),
                                                 "expression": gt.get("expression", {})}))
    shutil.copyfile(capture / "ground_truth" / "mesh.ply", out / "fit_mesh.ply")
    write_manifest(out, "fit", inputs={"calibration": capture / "session" / "calibration.json"},
                   params={"actor_id": "virtual", "source": "ground_truth"},
                   outputs={"params": "params.json", "fit_mesh": "fit_mesh.ply"})
    return out


def doppel_fit(capture: Path, out: Path) -> Path:
    """`doppel capture ingest` + `doppel fit` (frame 000) through the CLI."""
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "doppel", "capture", "ingest", str(capture / "session"), "--out",
                    str(out.parent / "ingest")], check=True, env=env)
    subprocess.run([sys.executable, "-m", "doppel", "fit", str(capture / "session"), "--landmarks",
                    str(out.parent / "ingest"), "--out", str(out), "--frame", "000"], check=True, env=env)
    print(f"doppel fit: {time.perf_counter() - t0:.1f} s (load {_load()})")
    return out


def rig_posed_fit(fit: Path, capture: Path, frame_index: int, frames: int) -> torch.Tensor:
    """(V, 3) the fitted double posed by its rig into a later frame of the capture's motion.

    The motion (doppel.synthetic_capture.motion_pose) is known as joint rotations: the "retargeted animation" is
    each joint's local rotation change from frame 0 to the frame (ground-truth shape's rig: L0_j^T Lf_j), applied
    on top of the fit's own local rotations (its frame-0 pose). The fitted body model (shape, expression, root) is
    posed with them; the fit's detail displacements (fit_mesh - model_fit_mesh) ride along, rotated by each
    vertex's skinning transform. So the mesh carries the fit's errors exactly as a rigged double would; it is
    not the ground-truth mesh of the frame."""
    import trimesh
    from roma import rotmat_to_rotvec, rotvec_to_rotmat

    from doppel.synthetic_capture import motion_pose
    from reconstruction.body_models import AnnyModel
    from reconstruction.body_models.base import BodyParams
    from reconstruction.fit_folder import FitFolder

    fp = FitFolder(fit).read_params()
    gt = json.loads((capture / "ground_truth" / "params.json").read_text())
    model = AnnyModel()
    L0, _ = model.reference_pose(gt["phenotype"], gt["pose"])
    Lf, _ = model.reference_pose(gt["phenotype"], motion_pose(gt["pose"], frame_index / max(1, frames - 1)))
    delta = torch.from_numpy(np.transpose(L0, (0, 2, 1)) @ Lf)
    R0 = rotvec_to_rotmat(torch.from_numpy(fp.pose))
    args = {"shape": torch.from_numpy(model.shape_vector(fp.shape))[None],
            "root_translation": torch.from_numpy(fp.root_translation)[None],
            "expression": torch.from_numpy(model.expression_vector(fp.expression))[None]}
    with torch.no_grad():
        o0 = model(BodyParams(pose=rotmat_to_rotvec(R0)[None], **args))
        of = model(BodyParams(pose=rotmat_to_rotvec(R0 @ delta)[None], **args))
    fitted = np.asarray(trimesh.load(fit / "fit_mesh.ply", process=False).vertices, np.float64)
    disp = torch.from_numpy(fitted) - o0.vertices[0]                      # detail displacements, world metres
    rel = of.joint_transforms[0] @ torch.linalg.inv(o0.joint_transforms[0])  # (J, 4, 4) frame 0 -> frame f
    sk = model.skin_weights
    idx, w = torch.from_numpy(sk.indices), torch.from_numpy(sk.weights)
    rot = (rel[idx, :3, :3] * w[..., None, None]).sum(1)                  # (V, 3, 3) blended skinning rotation
    return (of.vertices[0] + (rot @ disp[..., None])[..., 0]).float()


def train(session: Path, fit: Path, model_dir: Path, holdout: list[str], size: int, minutes: float,
          device: str, masks: Path | None = None, options: dict | None = None, members: int = 1) -> dict:
    from doppel.render_ensemble import train_ensemble
    from doppel.render_stage import TrainRequest

    req = TrainRequest(session, fit, model_dir, holdout, size, iterations=10 ** 7, device=device,
                       minutes=minutes, masks=masks, options=options, members=members)
    t0 = time.perf_counter()
    model_dir.mkdir(parents=True, exist_ok=True)

    def progress(step, total, loss, psnr):
        print(f"  step {step:6d}  {time.perf_counter() - t0:7.1f} s  loss {loss:.4f}  held-out PSNR {psnr:.2f} dB "
              f"(load {_load()})", flush=True)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    summary = train_ensemble(req, model_dir, progress=progress, status=lambda m: print(f"  {m}", flush=True))
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if device == "cuda" and members == 1:   # more members train in child processes
        summary["cuda_peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        print(f"peak CUDA memory of training at {size} px: {summary['cuda_peak_memory_gib']} GiB "
              f"({torch.cuda.get_device_name()})")
    return summary


def distil_student(args, capture: Path, fit: Path, teacher: Path, work: Path, trained: dict) -> tuple[Path, dict]:
    """Distil ``teacher`` into WORK/student (`doppel.render_distil`) within what is left of ``--minutes`` after the
    training (``trained``: its summary, with wall_seconds; {} for a given --model: the whole budget); returns
    (the student's folder, its summary with the training's and the distillation's wall seconds)."""
    from doppel.render_distil import DistilRequest, distil_session
    from doppel.render_stage import finish_training

    left = args.minutes - trained.get("wall_seconds", 0.0) / 60
    out = work / "student"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    req = DistilRequest(capture / "session", fit, teacher, out, args.distil, max(left, 0.5), args.jitter,
                        args.device, args.masks, args.distil_supersample, args.distil_filter)

    def progress(step, total, loss, psnr):
        print(f"  distil step {step:5d}  {time.perf_counter() - t0:7.1f} s  loss {loss:.4f}  held-out PSNR "
              f"{psnr:.2f} dB (load {_load()})", flush=True)

    s = distil_session(req, out, progress, lambda m: print(f"  {m}", flush=True))
    finish_training(out)                     # the checkpoint beside it, as `doppel render distil` removes it
    s["distil_wall_seconds"] = round(time.perf_counter() - t0, 1)
    s["train_wall_seconds"] = trained.get("wall_seconds")
    s["teacher_summary"] = trained
    print(f"distilled {s['steps']} steps in {s['distil_wall_seconds']} s ({s['stopped']}): held-out PSNR "
          f"{s['best_holdout_psnr']} dB (started at {s['distilled']['start_holdout_psnr']}, member "
          f"{s['distilled']['start_member']}); training + distillation "
          f"{(trained.get('wall_seconds', 0.0) + s['distil_wall_seconds']) / 60:.1f} min", flush=True)
    return out, s


def parse_options(items: list[str] | None) -> dict:
    """--option NAME=VALUE (a NeuralDoubleConfig / TrainConfig field; VALUE parsed as JSON, else a string)."""
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep:
            raise SystemExit(f"--option {it!r}: expected NAME=VALUE")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _composite(rgba: np.ndarray, bg: np.ndarray) -> np.ndarray:
    return np.clip(rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:]), 0, 1).astype(np.float32)


def _scores(photo: np.ndarray, img: np.ndarray, mask: np.ndarray) -> dict:
    import flip_evaluator

    from neural_render.metrics import masked_psnr, ssim_map

    p, t = torch.from_numpy(img), torch.from_numpy(photo)
    m = torch.from_numpy(mask)
    ssim = ssim_map(p[None], t[None])[0]
    err, flip_all, _ = flip_evaluator.evaluate(photo, img, "LDR")
    err = err.mean(-1) if err.ndim == 3 else err
    return {"psnr": round(float(masked_psnr(p, t, m)), 3), "ssim": round(float(ssim[m].mean()), 4),
            "flip": round(float(err[mask].mean()), 4), "flip_image": round(float(flip_all), 4)}


def evaluate_views(model, session, cameras: list[str], size: int, frame: str, verts=None,
                   masks: Path | None = None, jitter: int = 1, device: str = "cpu") -> tuple[dict, list]:
    """{camera: {"cgi": scores, "neural": scores, "cgi_aa": scores[, "cgi_jitter": scores]}} of one frame's photos
    at the training size, and preview rows. jitter > 1: the neural renderer draws each view as the mean of that many
    sub-pixel-shifted renders (`render shot --jitter`), and the CGI baseline is also scored drawn the same way
    ("cgi_jitter", its peer); "cgi" stays the issue's baseline (one render). device: where both are drawn."""
    import cv2

    from capture.camera import Camera
    from doppel.neural_inputs import load_photo, person_mask, scaled_camera
    from doppel.render_stage import training_size
    from neural_render.shot import render_shot_frames

    out, rows = {}, []
    v = (model.fitted_verts[:1] if verts is None else verts[None]).float()
    for name in cameras:
        cam = session.camera(name)
        W, H, _ = training_size(cam.width, cam.height, size, model.renderer.multiple)
        photo = cv2.resize(load_photo(session.frames[frame][name], cam), (W, H), interpolation=cv2.INTER_AREA)
        mask = person_mask(masks, frame, name, photo, len(session.frames) > 1)
        bg = np.median(photo[~mask], 0) if (~mask).any() else np.zeros(3, np.float32)
        c = Camera.stack([scaled_camera(cam, W, H)])
        res = {}
        for r in ("cgi", "neural"):
            fr = next(render_shot_frames(model, v, c, r, device, jitter=jitter if r == "neural" else 1))
            res[r] = _composite(fr.rgba_srgb, bg)
        if jitter > 1:
            res["cgi_jitter"] = _composite(next(render_shot_frames(model, v, c, "cgi", device,
                                                                   jitter=jitter)).rgba_srgb, bg)
        res["cgi_aa"] = _composite(cgi_supersampled(model, v.to(device), c.to(device=device)), bg)
        out[name] = {r: _scores(photo, img, mask) for r, img in res.items()}
        rows.append(np.concatenate([photo, res["cgi"], res["neural"],
                                    np.clip(np.abs(res["cgi"] - photo) * 4, 0, 1) * mask[..., None],
                                    np.clip(np.abs(res["neural"] - photo) * 4, 0, 1) * mask[..., None]], 1))
    return out, rows


def cgi_supersampled(model, verts, cam, s: int = 2) -> np.ndarray:
    """(H, W, 4) sRGB straight-alpha CGI render at s x s samples per pixel, area-averaged: the baseline with
    anti-aliased edges (a reference row: the neural renderer's supersampled G-buffer gives it that too)."""
    import torch.nn.functional as tf

    from neural_render.cgi import render_cgi
    from neural_render.texture import linear_to_srgb

    with torch.no_grad():
        lin = render_cgi(model.surface(verts[0]), model.faces, model.uvs, model.face_uvs, cam.scaled(s),
                         model.cgi_texture)[0]
    prem = torch.cat([linear_to_srgb(lin[..., :3]) * lin[..., 3:], lin[..., 3:]], -1)
    lo = tf.avg_pool2d(prem.permute(2, 0, 1)[None], s)[0].permute(1, 2, 0)
    a = lo[..., 3:]
    return torch.cat([lo[..., :3] / a.clamp_min(1e-6), a], -1).cpu().numpy()


def _mean(table: dict, renderer: str, key: str) -> float:
    return float(np.mean([v[renderer][key] for v in table.values()]))


def print_table(title: str, table: dict) -> dict:
    print(f"\n{title}")
    print(f"{'camera':>12} | {'CGI PSNR':>8} {'SSIM':>6} {'FLIP':>6} | {'neural PSNR':>11} {'SSIM':>6} {'FLIP':>6}")
    for cam, v in table.items():
        c, n = v["cgi"], v["neural"]
        print(f"{cam:>12} | {c['psnr']:8.2f} {c['ssim']:6.3f} {c['flip']:6.3f} | {n['psnr']:11.2f} {n['ssim']:6.3f} "
              f"{n['flip']:6.3f}")
    summ = {f"{r}_{k}": round(_mean(table, r, k), 4) for r in ("cgi", "neural", "cgi_aa")
            for k in ("psnr", "ssim", "flip")}
    summ["psnr_margin_db"] = round(summ["neural_psnr"] - summ["cgi_psnr"], 3)
    summ["psnr_margin_over_cgi_aa_db"] = round(summ["neural_psnr"] - summ["cgi_aa_psnr"], 3)
    print(f"{'mean':>12} | {summ['cgi_psnr']:8.2f} {summ['cgi_ssim']:6.3f} {summ['cgi_flip']:6.3f} | "
          f"{summ['neural_psnr']:11.2f} {summ['neural_ssim']:6.3f} {summ['neural_flip']:6.3f}   "
          f"margin {summ['psnr_margin_db']:+.2f} dB")
    print(f"{'CGI 2x AA':>12} | {summ['cgi_aa_psnr']:8.2f} {summ['cgi_aa_ssim']:6.3f} {summ['cgi_aa_flip']:6.3f} | "
          f"(reference: the baseline with anti-aliased edges; neural margin over it "
          f"{summ['psnr_margin_over_cgi_aa_db']:+.2f} dB)")
    if all("cgi_jitter" in v for v in table.values()):
        summ.update({f"cgi_jitter_{k}": round(_mean(table, "cgi_jitter", k), 4) for k in ("psnr", "ssim", "flip")})
        summ["psnr_margin_over_cgi_jitter_db"] = round(summ["neural_psnr"] - summ["cgi_jitter_psnr"], 3)
        print(f"{'CGI jitter':>12} | {summ['cgi_jitter_psnr']:8.2f} {summ['cgi_jitter_ssim']:6.3f} "
              f"{summ['cgi_jitter_flip']:6.3f} | (reference: the baseline drawn with the neural renderer's jitter; "
              f"neural margin over it {summ['psnr_margin_over_cgi_jitter_db']:+.2f} dB)")
    return summ


def render_speed(model, session, size: int, device: str, repeats: int = 3, jitter: int = 1) -> dict:
    """Median ms per frame (rasterization + texture + U-Net, ``jitter`` renders for the neural one) of one view at
    ``size`` px, one frame a call; on CUDA also the neural frames/s of a 16-frame shot drawn several renders a model
    call (``neural_render.shot.views_per_call``'s automatic count)."""
    from capture.camera import Camera
    from doppel.neural_inputs import scaled_camera
    from doppel.render_stage import training_size
    from neural_render.shot import render_shot_frames, views_per_call

    cam = session.cameras[0]
    W, H, _ = training_size(cam.width, cam.height, size, model.renderer.multiple)
    c = Camera.stack([scaled_camera(cam, W, H)])
    out = {}
    for r in ("neural", "cgi"):
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            next(render_shot_frames(model, model.fitted_verts[:1], c, r, device, jitter=jitter if r == "neural" else 1))
            if device == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
        out[f"{r}_ms_per_frame_{size}px"] = round(float(np.median(times[1:])), 1)
        if device == "cuda":
            out[f"{r}_frames_per_s_{size}px_cuda"] = round(1000 / float(np.median(times[1:])), 1)
    if device == "cuda":        # a shot's throughput: 16 frames, several renders a model call (views_per_call)
        verts = model.fitted_verts[:1].expand(16, -1, -1)
        times = []
        for _ in range(min(repeats, 3) + 1):
            t0 = time.perf_counter()
            for _fr in render_shot_frames(model, verts, c, "neural", device, jitter=jitter):
                pass
            times.append((time.perf_counter() - t0) * 1000 / 16)
        out[f"neural_shot_frames_per_s_{size}px_cuda"] = round(1000 / float(np.median(times[1:])), 1)
        out["neural_shot_views_per_call"] = views_per_call(model, c[0], device)
    return out


def memory_probe(session: Path, fit: Path, holdout: str, size: int) -> float:
    """Peak RSS (GiB) of a child process that trains 5 steps at ``size`` px (load, bake, G-buffers, steps)."""
    hold = holdout.split(",")
    code = (f"import sys, resource; sys.path.insert(0, {str(ROOT)!r}); import core, torch; torch.set_num_threads(1)\n"
            "from pathlib import Path; from doppel.render_stage import TrainRequest, train_session\n"
            "import tempfile; d = Path(tempfile.mkdtemp())\n"
            f"train_session(TrainRequest(Path({str(session)!r}), Path({str(fit)!r}), d / 'm', {hold!r}, {size}, "
            "iterations=5), d / 'm')\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr[-2000:])
        return math.nan
    return int(r.stdout.strip().splitlines()[-1]) / 2 ** 20


def main() -> None:
    from doppel.render_distil import STUDENT_OUTPUT_FILTER

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capture", type=Path, help="capture folder (session/ + ground_truth/); default: synthesize one")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--fitter", choices=("ground_truth", "doppel"), default="ground_truth")
    ap.add_argument("--holdout", default=DEFAULT_HOLDOUT, help="2 held-out cameras")
    ap.add_argument("--size", type=int, default=256, help="training / evaluation size (px)")
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget (the issue: 15 on CPU, 5 on GPU)")
    ap.add_argument("--capture-size", type=int, default=512, help="synthetic capture size (px)")
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--novel-poses", type=int, default=3, help="extra frames of the synthetic motion (0 = none)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--masks", type=Path, help="person masks (an ingest folder); default: backdrop key")
    ap.add_argument("--fit", type=Path, help="an existing fit folder of the capture (skips --fitter)")
    ap.add_argument("--model", type=Path, help="an existing model folder: evaluate it, no training")
    ap.add_argument("--novel-mesh", default="auto",
                    help="mesh of the novel poses: auto, rig (the fit posed by its rig; auto with a Doppel fit), "
                         "ground_truth (the capture's meshes) or a folder of FRAME.ply meshes written by "
                         "write_rig_posed_meshes (the rig-posed fit made where the body model is installed)")
    ap.add_argument("--option", action="append", metavar="NAME=VALUE",
                    help="override a NeuralDoubleConfig / TrainConfig field for training (repeatable; ablations)")
    ap.add_argument("--members", type=int, default=1,
                    help="models trained at once, one process (core) each, drawn as their mean")
    ap.add_argument("--memory-size", type=int, default=512, help="size of the peak-memory probe (0 = skip)")
    ap.add_argument("--jitter", type=int, default=1,
                    help="renders per view at sub-pixel camera shifts, averaged (`doppel render shot --jitter`)")
    ap.add_argument("--distil", type=int, default=0, metavar="STEPS",
                    help="after training, distil the model (its members, drawn with --jitter) into one model in "
                         "WORK/student for at most STEPS steps (`doppel render distil`; the rest of --minutes is its "
                         "budget) and evaluate that, drawn once")
    ap.add_argument("--distil-supersample", type=int, default=None,
                    help="the distilled model's G-buffer samples per pixel side (default: the teacher's)")
    ap.add_argument("--distil-filter", type=float, default=STUDENT_OUTPUT_FILTER,
                    help="the distilled model's output filter w (`render distil --output-filter`; 0 = none)")
    args = ap.parse_args()
    # the CPU figures are one thread; with CUDA the CPU only prepares (bake, G-buffers): all cores
    torch.set_num_threads(1 if args.device == "cpu" else max(1, min(16, os.cpu_count() or 1)))
    work = args.work or Path(tempfile.mkdtemp(prefix="neural_double_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; load {_load()}; torch threads {torch.get_num_threads()}")
    capture = args.capture or make_capture(work, args.cameras, args.capture_size, args.novel_poses)
    fit = args.fit or (ground_truth_fit if args.fitter == "ground_truth" else doppel_fit)(capture, work / "fit")
    print(f"fit: {args.fitter}" + (" (the capture's ground-truth mesh: Doppel's session fit is too slow for this "
                                   "benchmark's budget; --fitter doppel runs it)" if args.fitter == "ground_truth"
                                   else ""))
    results = run_benchmark(args, capture, fit, work)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults: {work / 'results.json'}, previews: {work / 'compare.png'}")


def run_benchmark(args, capture: Path, fit: Path, work: Path) -> dict:
    from capture.session import load_session
    from core.meshio import write_png
    from neural_render.ensemble import load_double

    holdout = args.holdout.split(",")
    model_dir = args.model or work / "model"
    if args.model is None:
        summary = train(capture / "session", fit, model_dir, holdout, args.size, args.minutes, args.device,
                        args.masks, parse_options(args.option), args.members)
        print(f"trained {summary['steps']} steps in {summary['wall_seconds']} s ({summary['stopped']}), best "
              f"held-out PSNR {summary['best_holdout_psnr']} dB at step {summary['best_step']}"
              + (f" (members alone: {summary['member_holdout_psnr']})" if summary.get("member_holdout_psnr") else ""))
    if args.distil:
        model_dir, summary = distil_student(args, capture, fit, model_dir, work, summary if args.model is None else {})
    jitter = 1 if args.distil else args.jitter          # a distilled model is drawn once
    model, meta = load_double(model_dir)
    summary = meta.get("summary", {}) if args.model and not args.distil else summary
    session = load_session(capture / "session")
    frames = list(session.frames)
    held, rows = evaluate_views(model, session, holdout, args.size, frames[0], masks=args.masks, jitter=jitter,
                                device=args.device)
    res = {"load_at_start": _load(), "options": parse_options(args.option), "jitter": jitter, "train": summary,
           "curve": meta["training"]["history"],
           "holdout": held, "holdout_summary": print_table("held-out views (frame 0)", held)}
    kind = novel_mesh_kind(args.novel_mesh, fit)
    novel = _novel_poses(model, session, capture, frames[1:], holdout, args.size, args.masks, fit, kind, jitter,
                         args.device)
    if novel is not None:
        res["novel_poses"], more = novel
        res["novel_mesh"] = kind
        res["novel_summary"] = print_table(f"novel poses (later frames, {kind} meshes)", res["novel_poses"])
        rows += more
    write_png(work / "compare.png", np.concatenate(rows, 0))
    res["speed"] = render_speed(model, session, 512, "cpu", jitter=jitter)
    if args.device == "cuda":
        for j in sorted({1, jitter}):
            res["speed"].update({f"{k}_jitter{j}": v for k, v in
                                 render_speed(model, session, 1024, "cuda", repeats=20, jitter=j).items()})
    print(f"\nrendering speed (CPU: {torch.get_num_threads()} thread(s)): {res['speed']} (load {_load()})")
    if args.memory_size:
        res["peak_training_memory_gib"] = {args.memory_size: round(memory_probe(capture / "session", fit, args.holdout,
                                                                               args.memory_size), 2)}
        print(f"peak training memory at {args.memory_size} px: {res['peak_training_memory_gib']} GiB")
    print("\ntraining curve (step, seconds, held-out PSNR):")
    for h in res["curve"]:
        print(f"  {h['step']:6d} {h['seconds']:8.1f} {h['holdout_psnr']}")
    return res


def _novel_poses(model, session, capture: Path, frames: list[str], holdout: list[str], size: int, masks=None,
                 fit: Path | None = None, mesh: str = "ground_truth", jitter: int = 1, device: str = "cpu"):
    """Both renderers on each later frame's mesh: mesh "rig" = the fit posed by its rig (``rig_posed_fit``),
    "ground_truth" = the capture's ground-truth mesh of the frame."""
    import trimesh

    if not frames:
        return None
    table, rows = {}, []
    cams = holdout + [c for c in ("ring00", "face00") if c in session.camera_names and c not in holdout]
    for f in frames:
        if mesh == "rig":
            v = rig_posed_fit(fit, capture, list(session.frames).index(f), len(session.frames))
        else:
            p = capture / "ground_truth" / "frames" / f / "mesh.ply" if mesh == "ground_truth" else \
                Path(mesh) / f"{f}.ply"
            if not p.is_file():
                print(f"novel poses: no {p}; skipped")
                return None
            v = torch.from_numpy(np.asarray(trimesh.load(p, process=False).vertices, np.float32))
        t, r = evaluate_views(model, session, cams, size, f, v, masks, jitter, device)
        table.update({f"{f}/{k}": val for k, val in t.items()})
        rows += r[:1]
    return table, rows


def write_rig_posed_meshes(fit: Path, capture: Path, out: Path) -> list[Path]:
    """OUT/FRAME.ply: ``rig_posed_fit`` of every later frame of the capture (the novel poses), for a machine
    without the body model (``--novel-mesh OUT``). Returns the files written."""
    import trimesh

    from capture.session import load_session
    from doppel.neural_inputs import load_fit_mesh

    frames = list(load_session(capture / "session", check_images=False).frames)
    faces = load_fit_mesh(fit).faces
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, f in enumerate(frames[1:], start=1):
        v = rig_posed_fit(fit, capture, i, len(frames)).numpy()
        trimesh.Trimesh(v, faces, process=False).export(out / f"{f}.ply")
        written.append(out / f"{f}.ply")
    return written


def novel_mesh_kind(choice: str, fit: Path) -> str:
    """auto: "rig" when the fit has a pose to pose its rig from (a Doppel fit), else "ground_truth"; rig,
    ground_truth or a folder of meshes (``write_rig_posed_meshes``) as given."""
    if choice not in ("auto", "rig", "ground_truth") and not Path(choice).is_dir():
        raise SystemExit(f"--novel-mesh {choice}: not auto, rig, ground_truth or a folder of FRAME.ply meshes")
    if choice != "auto":
        return choice
    return "rig" if json.loads((fit / "params.json").read_text()).get("pose") is not None else "ground_truth"


if __name__ == "__main__":
    main()
