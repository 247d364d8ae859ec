"""Where a neural double's frame time goes (issue 15's render-speed goal: >= 60 frames/s at 1024 px on a GPU).

Times each stage of one frame of a trained model, drawn as a shot draws it (``neural_render.shot``), at ``--size``
px on ``--device``: the G-buffer (rasterization at the model's supersample), the neural texture's sampling and
pooling, the U-Net with the colour correction (bfloat16 autocast on CUDA), the whole frame on the device, the
frame copied to host memory, and the shot path itself (``render_shot_frames``, which also converts to linear
premultiplied RGBA and hands both images to the host); and the rasterization alone (face index, barycentrics,
depth) at the G-buffer's size and at the frame's (a cost that does not fall with the pixel count is launch-bound).
Medians of ``--repeats`` after one warm-up, synchronised on CUDA. Prints one JSON object; ``--profile``: then
torch.profiler's tables of the G-buffer's operators (by self time on the device, then on the CPU) and the
device kernels and host synchronisations of one G-buffer and of one frame; ``--bin-items``: the rasterization
timed with the rasterizer's bin merging threshold at each value; ``--per-call``: a shot of ``--shot-frames`` frames
drawn by ``render_shot_frames`` with each number of renders a model call (``neural_render.shot.views_per_call``),
frames/s end to end (host copies included), with jitter 1 and 4, and the launches a frame where the device is CUDA;
``--views N``: each stage's ms a view when N views are drawn in one call (the GPU's work once launches are shared).

    PYTHONPATH=. python benchmarks/render_breakdown.py --model MODEL_DIR --session SESSION [--size 1024]
        [--device cuda] [--repeats 10] [--profile] [--bin-items 256,1024,4096] [--per-call 1,2,4,8] [--views 8]
"""

# make bench: needs inputs (see the docstring's command line); `make bench` lists it and does not run it
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import _contention  # noqa: F401 - first: Doppel's core before torch (benchmarks/_contention.py)
import torch


def timed(fn, device: str, repeats: int) -> float:
    """Median ms of ``fn()`` over ``repeats`` calls after one warm-up (synchronised on CUDA)."""
    times = []
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times[1:]), 2)


def gbuffer_camera(model, camera):
    """``camera`` at the model's G-buffer size (its supersample)."""
    return camera.scaled(model.config.supersample) if model.config.supersample > 1 else camera


def stage_times(model, verts, cams, device: str, repeats: int) -> tuple[dict, object]:
    """(median ms of the G-buffer, the texture sampling and pooling, the U-Net with the colour correction and the
    whole frame on the device, for verts (V, 3) or (B, V, 3) in the B views ``cams``; the frame as a callable)."""
    from neural_render.deferred import autocast_for

    g = model.gbuffer(verts, cams)
    feats, pooled, cov = model.pooled_features(g)

    def unet():
        with autocast_for(device):
            return model.render_features(feats, pooled, cov)

    def frame():
        with autocast_for(device):
            return model(verts, cams)

    return {"gbuffer_ms": timed(lambda: model.gbuffer(verts, cams), device, repeats),
            "texture_ms": timed(lambda: model.pooled_features(g), device, repeats),
            "unet_ms": timed(unet, device, repeats),
            "frame_on_device_ms": timed(frame, device, repeats)}, frame


@torch.no_grad()
def breakdown(model, camera, device: str, repeats: int) -> dict:
    """ms per stage of one frame of ``model`` (a NeuralDouble on ``device``) seen by ``camera`` (one view)."""
    from neural_render.raster import rasterize
    from neural_render.shot import render_shot_frames

    verts = model.fitted_verts[0].to(device)
    cam = camera.to(device=device)
    out, frame = stage_times(model, verts, cam, device, repeats)
    out["frame_to_host_ms"] = timed(lambda: frame().float().cpu(), device, repeats)
    out["shot_path_ms"] = timed(lambda: next(render_shot_frames(model, model.fitted_verts[:1], camera.as_batch(),
                                                                "neural", device)), device, repeats)
    surf = model.surface(verts)
    out["rasterize_ms"] = timed(lambda: rasterize(surf, model.faces, gbuffer_camera(model, cam)), device, repeats)
    out["rasterize_1x_ms"] = timed(lambda: rasterize(surf, model.faces, cam), device, repeats)
    out["frames_per_s_on_device"] = round(1000 / out["frame_on_device_ms"], 1)
    out["frames_per_s_shot_path"] = round(1000 / out["shot_path_ms"], 1)
    return out


def rasterize_by_bin_items(model, camera, device: str, repeats: int, values: list[int]) -> dict:
    """Median ms of the G-buffer's rasterization with ``raster.MIN_BIN_ITEMS`` (the device's) set to each of
    ``values`` (fewer, more padded bins as it grows: fewer launches, more arithmetic)."""
    import neural_render.raster as raster

    verts, big = model.surface(model.fitted_verts[0].to(device)), gbuffer_camera(model, camera.to(device=device))
    keep, out = dict(raster.MIN_BIN_ITEMS), {}
    try:
        for v in values:
            raster.MIN_BIN_ITEMS.update(cpu=v, other=v)
            with torch.no_grad():
                out[str(v)] = timed(lambda: raster.rasterize(verts, model.faces, big), device, repeats)
    finally:
        raster.MIN_BIN_ITEMS.update(keep)
    return out


def shot_throughput(model, camera, device: str, per_calls: list[int], frames: int, repeats: int) -> dict:
    """Frames/s of a ``frames``-frame shot (the fitted pose, every frame drawn) through ``render_shot_frames`` with
    each number of renders a model call, jitter 1 and 4 (median of ``repeats`` shots after one warm-up; CUDA
    synchronised by the host copies). On CUDA also the kernels and host synchronisations a frame."""
    from neural_render.shot import render_shot_frames, views_per_call

    verts = model.fitted_verts[:1].expand(frames, -1, -1)
    out = {"auto_views_per_call": views_per_call(model, camera[0], device)}
    for jitter in (1, 4):
        for per in per_calls:
            def shot(per=per, jitter=jitter):
                for _ in render_shot_frames(model, verts, camera, "neural", device, jitter=jitter, per_call=per):
                    pass
            ms = timed(shot, device, repeats)
            row = {"frames_per_s": round(frames * 1000 / ms, 1), "ms_per_frame": round(ms / frames, 2)}
            if device == "cuda":
                row.update(shot_launches(shot, frames))
            out[f"jitter{jitter}_per_call{per}"] = row
    return out


def shot_launches(shot, frames: int) -> dict:
    """CUDA kernels and host synchronisations a frame of one call of ``shot``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        shot()
        torch.cuda.synchronize()
    return {k + "_per_frame": v for k, v in launches(prof, frames).items()}


@torch.no_grad()
def stages_per_view(model, camera, device: str, repeats: int, views: int) -> dict:
    """ms a view of the G-buffer, the texture sampling, the U-Net and the whole frame when ``views`` views of the
    fitted pose are drawn in one call (what a shot drawn several renders a call pays each frame: the GPU's work once
    its launches are shared)."""
    from capture.camera import Camera

    verts = model.fitted_verts[:1].to(device).expand(views, -1, -1).contiguous()
    ms, _ = stage_times(model, verts, Camera.stack([camera.to(device=device)] * views), device, repeats)
    return {"views": views, **{k: round(v / views, 2) for k, v in ms.items()}}


def profile_gbuffer(model, camera, device: str, calls: int = 3) -> None:
    """Print torch.profiler's operator table of ``calls`` G-buffers and the device kernels one launches."""
    from torch.profiler import ProfilerActivity, profile

    verts, cam = model.fitted_verts[0].to(device), camera.to(device=device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.no_grad():
        model.gbuffer(verts, cam)
        with profile(activities=acts) as prof:
            for _ in range(calls):
                model.gbuffer(verts, cam)
            if device == "cuda":
                torch.cuda.synchronize()
    if device == "cuda":
        print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=25))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15 if device == "cuda" else 25))
    if device == "cuda":
        print(json.dumps({"per_gbuffer": launches(prof, calls), "per_frame": frame_launches(model, verts, cam)}))


def launches(prof, calls: int) -> dict:
    """CUDA kernels and host synchronisations (cudaStreamSynchronize / cudaDeviceSynchronize) per call of a
    profile of ``calls`` calls."""
    avg = prof.key_averages()
    kernels = sum(e.count for e in avg if e.device_type == torch.autograd.DeviceType.CUDA)
    syncs = sum(e.count for e in avg if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return {"cuda_kernels": round(kernels / calls, 1), "host_syncs": round(syncs / calls, 1)}


def frame_launches(model, verts, cam, calls: int = 3) -> dict:
    """`launches` of whole frames (G-buffer, texture, U-Net under autocast) on CUDA."""
    from torch.profiler import ProfilerActivity, profile

    from neural_render.deferred import autocast_for

    with torch.no_grad(), autocast_for("cuda"):
        model(verts, cam)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                model(verts, cam)
            torch.cuda.synchronize()
    return launches(prof, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a trained model folder (doppel render train)")
    ap.add_argument("--session", type=Path, required=True, help="the capture session (its first camera is drawn)")
    ap.add_argument("--size", type=int, default=1024, help="frame size (px, the longer side)")
    ap.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="also the G-buffer's operator table (torch.profiler)")
    ap.add_argument("--bin-items", default="", help="comma-separated MIN_BIN_ITEMS values to time the "
                    "rasterization with (e.g. 256,1024,4096; default: none)")
    ap.add_argument("--per-call", default="", help="comma-separated renders a model call to time a shot with "
                    "(e.g. 1,2,4,8; default: none)")
    ap.add_argument("--shot-frames", type=int, default=16, help="frames of the --per-call shot")
    ap.add_argument("--views", type=int, default=0, help="also each stage's ms a view with this many views drawn "
                    "in one call (0: not)")
    args = ap.parse_args()

    from capture.camera import Camera
    from capture.session import load_session
    from doppel.neural_inputs import scaled_camera
    from doppel.render_stage import training_size
    from neural_render.neural_double import load_model

    model = load_model(args.model, device=args.device)[0].eval()
    cam = load_session(args.session, check_images=False).cameras[0]
    W, H, _ = training_size(cam.width, cam.height, args.size, model.renderer.multiple)
    camera = Camera.stack([scaled_camera(cam, W, H)])
    res = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
           "torch_threads": torch.get_num_threads(), "size": [W, H], "supersample": model.config.supersample,
           **breakdown(model, camera, args.device, args.repeats)}
    if args.bin_items:
        res["rasterize_ms_by_min_bin_items"] = rasterize_by_bin_items(
            model, camera, args.device, args.repeats, [int(v) for v in args.bin_items.split(",")])
    if args.views > 1:
        res["stages_per_view"] = stages_per_view(model, camera, args.device, max(1, args.repeats // 2), args.views)
    if args.per_call:
        res["shot_by_views_per_call"] = shot_throughput(model, camera, args.device,
                                                        [int(v) for v in args.per_call.split(",")], args.shot_frames,
                                                        max(1, args.repeats // 3))
    print(json.dumps(res))
    if args.profile:
        profile_gbuffer(model, camera, args.device)


if __name__ == "__main__":
    main()
