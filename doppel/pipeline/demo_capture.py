"""Demo stage "capture": the synthetic capture rig (the virtual actor rendered from calibrated cameras),
then `ingest` (MediaPipe landmarks and masks, robust triangulation, QC), compared with the ground truth."""

from __future__ import annotations

import json

import numpy as np

from doppel.report import Section


def stage_capture(ctx) -> Section:
    from capture.ingest import IngestConfig, ingest
    from doppel.capture_report import ingest_sections, write_ingest_report
    from doppel.synthetic_capture import COCO_TO_MEDIAPIPE_POSE, synthesize_capture
    from doppel.synthetic_provenance import write_synthetic_session_manifest

    n, size = (4, 320) if ctx.quick else (16, 1024)
    d = ctx.out / "capture"
    syn = synthesize_capture(d, n_cameras=n, seed=ctx.seed, size=size, actor=ctx.state.get("actor"))
    write_synthetic_session_manifest(syn.session_dir, seed=ctx.seed, settings={"cameras": n, "size": size, "frames": 1},
                                     key=ctx.key)
    res = ingest(syn.session_dir, d / "ingest", IngestConfig(hands=not ctx.quick), provenance=ctx.provenance)
    write_ingest_report(res)        # capture/ingest/report.html, as `doppel capture ingest` writes it (linked below)
    ctx.state["capture_session"] = syn.session_dir
    ctx.state["capture_ingest"] = res.out
    fr = res.triangulated["frames"]["0"]
    gt = json.loads((syn.ground_truth_dir / "landmarks3d.json").read_text())["coco"]
    errs = [1000 * float(np.linalg.norm(np.array(fr["pose"][mp]["X"]) - np.array(gt[k])))
            for k, mp in COCO_TO_MEDIAPIPE_POSE.items() if fr["pose"][mp]["ok"]]
    table = {"cameras": f"{n} at {size}x{size}",
             "views with a face / a body": f"{sum(q.face for q in res.qc)} / {sum(q.pose for q in res.qc)} of {n}",
             "body landmarks vs ground-truth COCO keypoints": (f"median {np.median(errs):.0f} mm over {len(errs)}"
                                                               if errs else "none triangulated")}
    for part, s in fr["summary"].items():
        table[f"{part} reprojection"] = (f"{s['triangulated']}/{s['of']}, median {s['median_px']} px, "
                                         f"p95 {s['p95_px']} px")
    table["render / ingest"] = f"{syn.timings['render']:.1f} s / {res.timings['total']:.1f} s"
    sections = ingest_sections(res, prefix="capture/ingest/")
    sheet = next((img for s in sections for img in s.images), None)
    images = [sheet] if sheet else []
    cyc = _cycles_beside_raster(ctx, syn, size)
    if cyc[0]:
        images.append(cyc[0])
    table["Cycles view"] = cyc[1]
    return Section(
        "Capture: synthetic rig, landmarks, triangulation",
        text=("The virtual actor rendered by neural_render's rasterizer from calibrated cameras (a ring and a dome "
              "around the body, close-ups of the face), written as a real capture session; then ingested: MediaPipe "
              "face/pose/hand landmarks and person masks on every view, robust triangulation, QC. Warnings: "
              + ("; ".join(res.warnings) if res.warnings else "none")),
        images=images, table=table,
        files=["capture/ingest/report.html", "capture/ingest/triangulated.json", "capture/session/calibration.json"])


def _cycles_beside_raster(ctx, syn, size: int) -> tuple[tuple[str, str] | None, str]:
    """One camera of the capture path-traced by Cycles beside its raster render (capture/cycles_vs_raster.png):
    (image, caption) or None, and a table line. Small and few samples (a few seconds); a missing or failing
    Blender is reported in the table, not raised."""
    import time

    import cv2

    from capture.npcam import as_np
    from core.errors import DoppelError, MissingDependencyError
    from doppel.cycles_capture import CyclesSettings, render_actor_views
    from doppel.synthetic_capture import BACKGROUND_SRGB
    from doppel.virtual_actor import build_virtual_actor

    actor = ctx.state.get("actor") or build_virtual_actor(ctx.seed)
    side = min(size, 256 if ctx.quick else 384)
    cam = as_np(syn.cameras[0])
    cam_small = type(cam)(cam.name, cam.K * np.array([[side / size], [side / size], [1.0]]), cam.R, cam.t,
                          side, side, cam.dist)
    samples = 16 if ctx.quick else 24
    t0 = time.perf_counter()
    try:
        png = render_actor_views(actor, [cam_small], ctx.out / "capture" / "cycles", BACKGROUND_SRGB,
                                 CyclesSettings(samples=samples))[0]
    except (DoppelError, MissingDependencyError, OSError, ValueError) as e:
        return None, f"not rendered: {e}"
    raster = cv2.imread(str(syn.session_dir / "images" / f"{cam.name}.png"))
    raster = cv2.resize(raster, (side, side), interpolation=cv2.INTER_AREA)
    both = np.hstack([raster, cv2.imread(str(png))])
    ok, buf = cv2.imencode(".png", both)
    if ok:
        from core.storage import atomic_write_bytes

        atomic_write_bytes(ctx.out / "capture" / "cycles_vs_raster.png", buf.tobytes())
    secs = time.perf_counter() - t0
    return (("capture/cycles_vs_raster.png", f"{cam.name}: raster (left) and Cycles, {samples} samples (right)"),
            f"{cam.name} at {side}x{side} px, {samples} samples + OpenImageDenoise, {secs:.1f} s")
