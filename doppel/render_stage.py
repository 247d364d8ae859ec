"""`doppel render train` and `doppel render shot`: the neural double trained from a capture session and its fit,
and shots rendered from it (library code behind the thin commands; the learning itself is neural_render's).

A model folder (``render_model`` stage): model.safetensors + config.json (neural_render.neural_double),
history.json (the training curve), holdout.png (held-out views: photo | CGI baseline | neural | error x4),
manifest.json. While training, checkpoints go to a sibling folder ``.NAME.checkpoint`` (kept when the run is
interrupted, removed when it finishes), which `--resume` continues from.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_STAGE = "render_model"
SHOT_STAGE = "render"
MIN_SIZE, MAX_SIZE = 32, 4096


@dataclass
class TrainRequest:
    """What `doppel render train` was asked for."""

    session: Path
    fit: Path
    out: Path
    holdout: list[str]
    size: int = 256                  # longest image side in pixels (rounded to the U-Net's multiple)
    iterations: int = 2000
    device: str = "cpu"
    resume: bool = False
    masks: Path | None = None
    minutes: float | None = None     # wall-clock budget of the optimisation
    texture_size: int = 256          # neural texture side
    rgb_texture_size: int = 1024     # side of the learned RGB prior texture (0: the neural texture's channels 0-2)
    cgi_texture_size: int = 1024     # the baked texture kept for the CGI renderer
    supersample: int = 2             # G-buffer samples per pixel side (anti-aliased edges; same U-Net cost)
    refine_to_photos: bool = False   # refine the fitted mesh's outlines to the training photos before the bake
                                     # (NeuralDoubleConfig.refine_to_photos; an options entry overrides it)
    options: dict | None = None      # overrides of NeuralDoubleConfig / TrainConfig fields by name (ablations)
    members: int = 1                 # models trained apart, one process each, drawn as their mean
                                     # (doppel.render_ensemble; neural_render.ensemble)
    member: int = 0                  # which member this request trains: seeds + member, its own checkpoint folder


def split_options(options: dict | None) -> tuple[dict, dict]:
    """(NeuralDoubleConfig overrides, TrainConfig overrides) of ``options`` {field: value}; ValueError naming an
    unknown field."""
    from dataclasses import fields

    from neural_render.neural_double import NeuralDoubleConfig
    from neural_render.training import TrainConfig

    model_f = {f.name for f in fields(NeuralDoubleConfig)} - {"cameras"}
    train_f = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options or {}) - model_f - train_f)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)} "
                         "(fields of NeuralDoubleConfig / TrainConfig)")
    opts = dict(options or {})
    return {k: v for k, v in opts.items() if k in model_f}, {k: v for k, v in opts.items() if k in train_f}


def checkpoint_dir(out: Path, member: int = 0) -> Path:
    """The checkpoint folder of a training into ``out`` (member k > 0 of an ensemble: a subfolder of member 0's)."""
    from core.leftovers import checkpoint_sibling

    ck = checkpoint_sibling(out)
    return ck / f"member{member}" if member else ck


def resume_hint(out: Path) -> str | None:
    """What to tell a user whose training into ``out`` was interrupted: the checkpoint kept and how to continue
    from it; None when no checkpoint was written yet."""
    import json

    ck = checkpoint_dir(out)
    try:
        step = json.loads((ck / "config.json").read_text(encoding="utf-8"))["training"]["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"the checkpoint of step {step} is kept in {ck}: the same command with --resume continues from it"


def member_dir(out: Path, member: int = 0) -> Path:
    """Where member ``member`` of an ensemble lives inside the model folder ``out`` (member 0: ``out`` itself)."""
    return Path(out) / "members" / str(member) if member else Path(out)


def training_size(width: int, height: int, size: int, multiple: int) -> tuple[int, int, str | None]:
    """(W', H', note): the image size whose longest side is ``size`` rounded to ``multiple`` (both sides), and a
    note saying so when ``size`` had to be rounded (None otherwise)."""
    from neural_render.deferred import round_size

    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    rounded = round_size(size, multiple)
    note = None if rounded == size else f"--size {size} rounded to {rounded} (a multiple of {multiple}, the U-Net's)"
    s = rounded / max(width, height)
    return round_size(width * s, multiple), round_size(height * s, multiple), note


def check_holdout(holdout: list[str], cameras: list[str], session: Path) -> list[str]:
    unknown = [c for c in holdout if c not in cameras]
    if unknown:
        raise ValueError(f"--holdout {','.join(unknown)}: no such camera in {session} (cameras: {', '.join(cameras)})")
    if len(set(holdout)) >= len(cameras):
        raise ValueError(f"--holdout: every camera of {session} is held out; keep at least one for training")
    return holdout


def resolve_device(device: str) -> str:
    """auto -> cuda when available else cpu; cuda without a GPU: ValueError."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
    return device


def steered_frames(fit_dir: Path) -> set[str]:
    """The frames of a take's fit that fewer than two views saw (FIT/metrics.json
    ``frames_seen_by_fewer_than_two_views``; empty for a one-frame fit or an unreadable file)."""
    import json

    try:
        data = json.loads((Path(fit_dir) / "metrics.json").read_text(encoding="utf-8"))
        return {str(f) for f in data.get("frames_seen_by_fewer_than_two_views") or []}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def _load_views(req: TrainRequest, multiple: int):
    """Session, fit, cameras at the training size, frames, photos (N, H, W, 3), masks (N, H, W), view names,
    per-view (frame index, camera name), full-size first-frame photos/masks/cameras (for the bake), a size note."""
    import cv2

    from doppel.neural_inputs import (
        check_fit_matches_session,
        check_session_calibrated,
        load_fit_mesh,
        load_photo,
        person_mask,
        scaled_camera,
    )

    session = check_session_calibrated(req.session)
    check_holdout(req.holdout, session.camera_names, req.session)
    frames_all = list(session.frames)
    fit = load_fit_mesh(req.fit, frames_all)
    sizes = {(c.width, c.height) for c in session.cameras}
    if len(sizes) > 1:
        raise ValueError(f"{req.session}: cameras of different image sizes {sorted(sizes)}; the trainer needs one size")
    W, H, note = training_size(*sizes.pop(), req.size, multiple)
    cams = [scaled_camera(c, W, H) for c in session.cameras]
    photos, masks, names, where, full = [], [], [], [], {"photos": [], "masks": []}
    weak = steered_frames(req.fit)
    if weak:
        log.warning("%s: frame(s) %s of the take were seen by fewer than two views (fitted from the motion before "
                    "them): left out of the training (their mesh would teach the photos' pixels in the wrong place)",
                    req.fit, ", ".join(sorted(weak)))
    first = next(iter(fit.frames))                   # the frame the fit was made on (a take's first)
    if session.dropped.get(first):
        raise ValueError(f"{req.fit}: its frame {first!r} has no image of camera(s) {session.dropped[first]} (a "
                         "dropped frame): a neural double starts from a frame every camera saw; fit one of those")
    for fi, frame in enumerate(f for f in frames_all if f in fit.frames and f not in weak):
        for cam in session.cameras:
            if cam.name not in session.frames[frame]:     # dropped in a take's later frame (never the first)
                continue
            p = load_photo(session.frames[frame][cam.name], cam)
            m = person_mask(req.masks, frame, cam.name, p, len(frames_all) > 1)
            if fi == 0:
                full["photos"].append(p)
                full["masks"].append(m)
            photos.append(cv2.resize(p, (W, H), interpolation=cv2.INTER_AREA))
            masks.append(cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_AREA))
            names.append(f"{frame}/{cam.name}")
            where.append((frame, cam.name))
    check_fit_matches_session(fit, cams, [m > 0.5 for m in masks[:len(cams)]], first)
    return session, fit, cams, photos, masks, names, where, full, note


def fit_advice(fit_dir: Path) -> str | None:
    """One line of advice when the fit could serve a neural double better: a session fit made without the
    fitter's silhouette term (FIT/metrics.json ``"silhouettes": false``). None otherwise (with it, a scan
    registration, no metrics)."""
    import json

    try:
        metrics = json.loads((Path(fit_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(metrics, dict) and metrics.get("silhouettes") is False:
        return ("the fit was made without the silhouette term: refit with `doppel fit ... --silhouette-weight 1` to 3 "
                "for a neural double (held-out views about +0.3 dB on the Cycles benchmark, docs/benchmarks.md)")
    return None


def _training_cameras(session, holdout: list[str]):
    """(indices, undistorted Camera batch) of the session's cameras that are not held out."""
    from capture.camera import Camera

    keep = [i for i, c in enumerate(session.cameras) if c.name not in holdout]
    return keep, Camera.stack([session.cameras[i].undistorted() for i in keep])


def _refine_for_model(fit, session, full, holdout: list[str], cfg, say):
    """(V,) float32 normal offsets (metres) of the first frame's fitted mesh refined to the training cameras'
    photos (``neural_render.photo_refine``; never the held-out cameras), with TrainConfig ``cfg``'s settings."""
    import torch

    from neural_render.photo_refine import PhotoRefineConfig, photo_refine

    keep, cams = _training_cameras(session, holdout)
    say("refining the mesh to the photos")
    res = photo_refine(torch.from_numpy(fit.frames[next(iter(fit.frames))]), torch.from_numpy(fit.faces),
                       torch.from_numpy(fit.uvs), torch.from_numpy(fit.face_uvs), cams,
                       [torch.from_numpy(full["photos"][i]) for i in keep],
                       [torch.from_numpy(full["masks"][i]) for i in keep],
                       PhotoRefineConfig(steps=cfg.refine_steps, lr=cfg.refine_lr, w_offset=cfg.refine_w_offset,
                                         w_photo=cfg.refine_w_photo))
    log.info("mesh refined to the photos: outline term %.5f -> %.5f", res.loss_before, res.loss_after)
    return res.offsets


def _bake_for_model(fit, session, full, holdout: list[str], size: int, offsets=None):
    """Linear RGB (S, S, 3) texture baked from the first frame's training cameras (never the held-out ones), on
    the fitted mesh moved along its normals by ``offsets`` (V,) metres when given."""
    import torch

    from neural_render.bake import BakeConfig, bake_texture
    from neural_render.shading import vertex_normals
    from neural_render.texture import srgb_to_linear

    keep, cams = _training_cameras(session, holdout)
    verts, faces = torch.from_numpy(fit.frames[next(iter(fit.frames))]), torch.from_numpy(fit.faces)
    if offsets is not None:
        verts = verts + offsets[:, None] * vertex_normals(verts, faces)
    res = bake_texture(verts, faces, torch.from_numpy(fit.uvs), torch.from_numpy(fit.face_uvs), cams,
                       lambda k: srgb_to_linear(torch.from_numpy(full["photos"][keep[k]])),
                       [torch.from_numpy(full["masks"][i]) for i in keep], BakeConfig(size=size))
    return res.texture


def _build_model(req: TrainRequest, fit, train_cams: list[str], cgi_texture, device: str, seed: int):
    """A new NeuralDouble (texture RGB channels from the bake, started from ``seed``), or the checkpoint's / OUT's
    when resuming.
    Returns (model, optimizer tensors, optimizer steps, training state or None)."""
    import torch

    from neural_render.neural_double import ModelError, NeuralDouble, NeuralDoubleConfig, load_model, topology_signature

    verts = torch.from_numpy(np.stack(list(fit.frames.values())))
    sig = topology_signature(fit.faces, fit.uvs, fit.face_uvs, verts.shape[1])
    src = next((d for d in (checkpoint_dir(req.out, req.member), member_dir(req.out, req.member))
                if (d / "config.json").is_file()), None) if req.resume else None
    if src is not None:
        model, meta, opt = load_model(src, device, optimizer_for=True)
        if "distil" in meta:
            raise ModelError(f"--resume: {src} is a `doppel render distil` checkpoint; resume it with `doppel render "
                             "distil --resume`, or delete it")
        if meta["signature"] != sig:
            raise ModelError(f"--resume: the checkpoint in {src} is of another rig / topology than {req.fit}")
        if meta["config"]["cameras"] != train_cams:
            raise ModelError(f"--resume: the checkpoint in {src} was trained on cameras {meta['config']['cameras']}, "
                             f"this run trains on {train_cams} (same --holdout needed)")
        return model, opt, meta.get("optimizer_steps", {}), meta.get("training")
    cfg = NeuralDoubleConfig(**{"texture_size": req.texture_size, "rgb_texture_size": req.rgb_texture_size,
                                "supersample": req.supersample, "refine_to_photos": req.refine_to_photos,
                                **split_options(req.options)[0]}, cameras=train_cams)
    model = NeuralDouble(cfg, torch.from_numpy(fit.faces), torch.from_numpy(fit.uvs), torch.from_numpy(fit.face_uvs),
                         verts, cgi_texture, seed=seed)
    model.init_from_bake(cgi_texture)
    return model.to(device), {}, {}, None


def train_session(req: TrainRequest, tmp: Path, progress: Callable[[int, int, float, float], None] | None = None,
                  status: Callable[[str], None] | None = None, params: dict | None = None) -> dict:
    """Train (or resume) the neural double of ``req`` and write the model folder into ``tmp`` (a staging folder);
    returns the summary written to the manifest."""
    import torch

    from capture.camera import Camera
    from neural_render.deferred import DeferredNeuralRenderer
    from neural_render.training import TrainConfig, load_optimizer_state, make_optimizer, prepare_views

    say = status or (lambda s: None)
    say("loading the session and the fit")
    session, fit, cams, photos, masks, names, where, full, note = _load_views(req, DeferredNeuralRenderer().multiple)
    if note:
        log.warning(note)
        say(note)
    train_cams = [c.name for c in session.cameras if c.name not in req.holdout]
    model_opts, train_opts = split_options(req.options)
    train_opts["seed"] = int(train_opts.get("seed", 0)) + req.member
    cfg = TrainConfig(iterations=req.iterations, max_seconds=math.inf if req.minutes is None else req.minutes * 60,
                      **train_opts)
    offsets = _refine_for_model(fit, session, full, req.holdout, cfg, say) \
        if model_opts.get("refine_to_photos", req.refine_to_photos) else None
    say("baking the CGI texture")
    cgi = _bake_for_model(fit, session, full, req.holdout, req.cgi_texture_size, offsets)
    model, opt_t, opt_steps, state = _build_model(req, fit, train_cams, cgi, req.device, cfg.seed)
    if offsets is not None and state is None:
        with torch.no_grad():
            model.vertex_offset.copy_(offsets.to(model.vertex_offset))
    frames = list(fit.frames)
    verts = torch.from_numpy(np.stack([fit.frames[f] for f, _ in where]))
    cam_of = {c.name: c for c in cams}
    ci = torch.tensor([train_cams.index(c) if c in train_cams else -1 for _, c in where])
    say("rasterizing G-buffers")
    views = prepare_views(model.cpu(), verts, Camera.stack([cam_of[c] for _, c in where]),
                          torch.from_numpy(np.stack(photos)), torch.from_numpy(np.stack(masks)), ci, None, names)
    model = model.to(req.device)
    opt = make_optimizer(model, cfg)
    load_optimizer_state(model, opt, opt_t, opt_steps)
    return _run_training(req, tmp, model, opt, views, cfg, state, progress, say,
                         {"frames": frames, "frames_trained": list(dict.fromkeys(f for f, _ in where)),
                          "size": [cams[0].width, cams[0].height], "size_note": note,
                          "holdout": req.holdout, "fit_advice": fit_advice(req.fit), **dict(params or {})})


def _run_training(req: TrainRequest, tmp: Path, model, opt, views, cfg, state, progress, say, info: dict) -> dict:
    """The optimisation with checkpoints, then the model folder (model, history, hold-out preview, manifest)."""
    from core.leftovers import record_owner
    from core.storage import atomic_write_json
    from neural_render.ensemble import MEMBERS_KEY
    from neural_render.neural_double import save_model
    from neural_render.training import holdout_psnr, train_neural_double

    ck = checkpoint_dir(req.out, req.member)
    start = int(state["step"]) if state else 0
    best = (state.get("best_holdout_psnr") or -math.inf, state.get("best_step", start)) if state else None
    prior = list(state.get("history", [])) if state else []
    before = float(state.get("seconds", prior[-1]["seconds"] if prior else 0.0)) if state else 0.0

    def whole(run_history: list[dict]) -> list[dict]:
        """The curve of every run so far: a resumed run's entries after the earlier runs', its seconds continued."""
        return prior + [{**e, "seconds": round(e["seconds"] + before, 2)} for e in run_history]

    def checkpoint(m, o, st):
        st = {**st, "seconds": round(st.get("seconds", 0.0) + before, 2), "history": whole(st.get("history", []))}
        save_model(ck, m, extra={"training": st}, optimizer=o)
        record_owner(checkpoint_dir(req.out))       # whose likeness it holds: a consent's purge finds it

    say("training")
    res = train_neural_double(model, views, cfg, req.device, opt, start, progress, checkpoint, best)
    history = whole(res.history)
    summary = {"steps": res.steps, "best_step": res.best_step, "stopped": res.stopped, "divergences": res.divergences,
               "lr_schedule": res.lr_schedule,
               "best_holdout_psnr": round(res.best_holdout_psnr, 3) if math.isfinite(res.best_holdout_psnr) else None,
               **info}
    outputs = {"model": "model.safetensors", "config": "config.json", "history": "history.json"}
    single = summary["best_holdout_psnr"]           # the kept state's (a resumed run continues from it)
    drawn = _save_snapshots(tmp, model.cpu(), res.snapshots, outputs)
    shown = drawn["model"] if drawn else model
    if drawn:                                       # the folder draws its snapshots too: score what it draws
        summary["snapshots"] = [{"step": s.step, "holdout_psnr": round(s.psnr, 3)} for s in res.snapshots]
        summary["single_state_holdout_psnr"] = single
        psnr = holdout_psnr(shown, views, "cpu", cfg.composite_loss)
        summary["best_holdout_psnr"] = round(psnr, 3) if math.isfinite(psnr) else None
    save_model(tmp, model, extra={"training": {"step": res.steps, "best_step": res.best_step,
                                               "best_holdout_psnr": single, "history": history},
                                  "summary": summary, **({MEMBERS_KEY: drawn["names"]} if drawn else {})})
    atomic_write_json(tmp / "history.json", history)
    if len(views.holdout_ids):
        holdout_preview(tmp / "holdout.png", shown, views)
        outputs["holdout"] = "holdout.png"
    write_model_manifest(req, tmp, info, summary, outputs)
    return summary


def _save_snapshots(tmp: Path, model, snapshots: list, outputs: dict[str, str]) -> dict | None:
    """Write a run's other kept states (``TrainResult.snapshots``) as ``tmp/snapshots/j`` model folders and add
    their files to ``outputs``. None without snapshots, else {"names": the folders relative to tmp, "model": a
    NeuralEnsemble of ``model`` and them (for scoring)}."""
    import copy

    from neural_render.ensemble import NeuralEnsemble
    from neural_render.neural_double import save_model

    if not snapshots:
        return None
    states, names = [model], []
    for j, snap in enumerate(snapshots, 1):
        m = copy.deepcopy(model)
        m.load_state_dict(snap.state)
        name = f"snapshots/{j}"
        save_model(tmp / name, m, extra={"training": {"step": snap.step, "holdout_psnr": round(snap.psnr, 3)}})
        outputs.update({f"{name}/model": f"{name}/model.safetensors", f"{name}/config": f"{name}/config.json"})
        states.append(m.eval())
        names.append(name)
    return {"names": names, "model": NeuralEnsemble(states).eval()}


def write_model_manifest(req: TrainRequest, tmp: Path, info: dict, summary: dict, outputs: dict[str, str]) -> None:
    """The model folder's manifest.json: the session's calibration and the fit as inputs, ``outputs`` {name: path
    relative to tmp}, the training summary under ``render_model``."""
    from core.storage import write_manifest

    write_manifest(tmp, MODEL_STAGE, inputs={"calibration": req.session / "calibration.json",
                                             "fit_params": req.fit / "params.json",
                                             "fit_mesh": req.fit / "fit_mesh.ply"},
                   params={"size": req.size, "iterations": req.iterations, "holdout": req.holdout,
                           "device": req.device, **({"members": req.members} if req.members > 1 else {}),
                           **{k: v for k, v in info.items() if k in ("actor_id", "consent_id", "production")}},
                   outputs=outputs, extra={"render_model": summary})


def holdout_views(req: TrainRequest, model, loaded: tuple | None = None):
    """``neural_render.training.TrainViews`` of the held-out cameras in the first fitted frame at the training size
    (what the trainer scores): for scoring a trained model (an ensemble) after training. loaded: ``_load_views``'s
    result when the caller has it (the session is not read again)."""
    import torch

    from capture.camera import Camera
    from neural_render.training import prepare_views

    _, fit, cams, photos, masks, names, where, _, _ = loaded or _load_views(req, model.renderer.multiple)
    first = where[0][0]
    ids = [i for i, (f, c) in enumerate(where) if f == first and c in req.holdout]
    cam_of = {c.name: c for c in cams}
    return prepare_views(model, torch.from_numpy(np.stack([fit.frames[first]] * len(ids))),
                         Camera.stack([cam_of[where[i][1]] for i in ids]),
                         torch.from_numpy(np.stack([photos[i] for i in ids])),
                         torch.from_numpy(np.stack([masks[i] for i in ids])), torch.full((len(ids),), -1),
                         None, [names[i] for i in ids])


def finish_training(out: Path) -> None:
    """After the model folder is in place: the checkpoint folder is no longer needed."""
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)


def holdout_preview(path: Path, model, views) -> None:
    """Rows of held-out views: photo | CGI baseline | neural | |neural - photo| x 4 (sRGB, in the person mask)."""
    import torch
    import torch.nn.functional as tf

    from core.meshio import write_png
    from neural_render.gbuffer import GBuffer
    from neural_render.texture import linear_to_srgb, sample_texture
    from neural_render.training import render_views

    ids = views.holdout_ids
    neural = render_views(model.cpu(), views, ids, "cpu")
    s = model.config.supersample
    rows = []
    for k, i in enumerate(ids.tolist()):
        g: GBuffer = views.g.index([i])
        cgi = linear_to_srgb(sample_texture(g.uv, model.cgi_texture, mask=g.mask))
        cgi = tf.avg_pool2d(cgi.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)[0] if s > 1 else cgi[0]
        m = views.masks[i][..., None]
        n = neural[k, ..., :3] * neural[k, ..., 3:] + views.images[i] * (1 - neural[k, ..., 3:])
        err = ((n - views.images[i]).abs() * 4 * m).clamp(0, 1)
        rows.append(torch.cat([views.images[i], cgi, n, err], 1))
    write_png(path, torch.cat(rows, 0).numpy())
