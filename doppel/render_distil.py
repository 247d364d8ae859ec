"""`doppel render distil`: one neural double that draws what a trained ensemble draws (with render-time jitter), at
the cost of one model and one render (library code behind the thin command; the learning is
``neural_render.distill``'s).

The teacher is a `doppel render train` model folder (usually ``--members 2`` or more); the student starts from its
member with the best held-out PSNR and learns the teacher's jittered renders at the session's training cameras and
between them (the held-out cameras, never drawn for it, choose the state kept). The output is a plain model folder
(``render_model`` stage): `doppel render shot` and `doppel swap` take it like any other.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.render_distil_checkpoint import checkpoint_writer, forget_checkpoint, load_checkpoint, teacher_id
from doppel.render_stage import (
    MODEL_STAGE,
    TrainRequest,
    _load_views,
    checkpoint_dir,
    holdout_preview,
    holdout_views,
)

log = logging.getLogger(__name__)

STUDENT_OUTPUT_FILTER = 0.08    # the student's output filter (NeuralDoubleConfig.output_filter), drawn through while
                                # it learns: docs/benchmarks.md, "The output filter"


@dataclass
class DistilRequest:
    """What `doppel render distil` was asked for."""

    session: Path
    fit: Path
    teacher: Path                    # a `doppel render train` model folder (an ensemble or one model)
    out: Path
    steps: int = 1000
    minutes: float | None = None     # wall-clock budget of the optimisation
    jitter: int = 4                  # teacher renders per view at sub-pixel shifts
    device: str = "cpu"
    masks: Path | None = None
    supersample: int | None = None   # the student's G-buffer samples per pixel side (None: the teacher's); 1 draws
                                     # a quarter of the samples, the student learning the teacher's soft edges
    output_filter: float = STUDENT_OUTPUT_FILTER
    crop: int | None = None          # training crop side in pixels (None: half the longer image side, at least 128:
                                     # the trainer's 128 px crops at 256 px, 512 at 1024 as the device checks train)
    resume: bool = False             # go on from the checkpoint an interrupted run into ``out`` left


def _teacher(req: DistilRequest):
    """(teacher model, its config.json dict, the TrainRequest it was trained with as far as distillation needs it)."""
    from neural_render.ensemble import load_double
    from neural_render.neural_double import ModelError

    if not (Path(req.teacher) / "config.json").is_file():
        raise ModelError(f"--teacher {req.teacher}: not a `doppel render train` model folder (no config.json)")
    teacher, meta = load_double(req.teacher, req.device)
    info = meta.get("summary") or {}
    if not info.get("size"):
        raise ModelError(f"--teacher {req.teacher}: its config.json has no training summary (size); retrain it")
    treq = TrainRequest(req.session, req.fit, req.out, list(info.get("holdout") or []), max(info["size"]),
                        device=req.device, masks=req.masks, supersample=teacher.config.supersample)
    return teacher.eval(), meta, treq


def _student(teacher, meta: dict, supersample: int | None, output_filter: float = 0.0):
    """A copy of the teacher's member with the best held-out PSNR (member 0 when none was scored), drawing
    ``supersample`` G-buffer samples per pixel side (None: as the teacher) through ``output_filter``
    (``neural_render.output_filter``), and its index."""
    from dataclasses import replace

    members = list(getattr(teacher, "members", [teacher]))
    scores = (meta.get("summary") or {}).get("member_holdout_psnr") or []
    scores = [-math.inf if s is None else s for s in scores]
    k = int(np.argmax(scores)) if len(scores) == len(members) else 0
    student = copy.deepcopy(members[k])
    if supersample is not None:
        if supersample not in (1, 2, 4):
            raise ValueError(f"--supersample must be 1, 2 or 4, got {supersample}")
        student.config = replace(student.config, supersample=supersample)
    student.config = replace(student.config, output_filter=output_filter)
    return student, k


def _training_views(req: DistilRequest, teacher, treq: TrainRequest, loaded: tuple, cfg):
    """Teacher views at and between the training cameras (``cfg``: DistilConfig's neighbours, positions, jitter),
    in every fitted frame of the take; loaded: ``_load_views``' result."""
    import torch

    from capture.camera import Camera
    from neural_render.distill import between_cameras, teacher_views
    from neural_render.neural_double import ModelError, topology_signature
    from neural_render.training import backdrop_colours

    _, fit, cams, photos, masks, _, where, _, _ = loaded
    first = where[0][0]
    verts = fit.frames[first]
    if topology_signature(fit.faces, fit.uvs, fit.face_uvs, verts.shape[0]) != teacher.signature():
        raise ModelError(f"--teacher {req.teacher} was trained on another rig / topology than --fit {req.fit}")
    train_cams = [c.name for c in cams if c.name not in treq.holdout]
    if train_cams != list(teacher.config.cameras):
        raise ModelError(f"--teacher {req.teacher} was trained on cameras {list(teacher.config.cameras)}; this "
                         f"session's are {train_cams}")
    keep = [i for i, (f, c) in enumerate(where) if f == first and c in train_cams]
    bg = backdrop_colours(torch.from_numpy(np.stack([photos[i] for i in keep])),
                          torch.from_numpy(np.stack([masks[i] for i in keep]))).median(0).values
    cam_of = {c.name: c for c in cams}
    joined = between_cameras(Camera.stack([cam_of[c] for c in train_cams]), cfg.neighbours, cfg.positions)
    frames = list(dict.fromkeys(f for f, _ in where))
    meshes = torch.cat([torch.from_numpy(fit.frames[f]).float()[None].expand(len(joined), -1, -1) for f in frames])
    return teacher_views(teacher, meshes, Camera.stack([joined] * len(frames)), bg, cfg.jitter, req.device)


def distil_session(req: DistilRequest, tmp: Path, progress: Callable[[int, int, float, float], None] | None = None,
                   status: Callable[[str], None] | None = None, params: dict | None = None) -> dict:
    """Distil ``req.teacher`` into one model written to the staging folder ``tmp``; returns the summary written to
    its manifest and config.json."""
    from core.storage import atomic_write_json
    from neural_render.distill import DistilConfig, distil
    from neural_render.neural_double import save_model
    from neural_render.training import TrainConfig

    say = status or (lambda s: None)
    if req.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {req.steps}")
    say("loading the teacher")
    teacher, meta, treq = _teacher(req)
    loaded = _load_views(treq, teacher.renderer.multiple)
    note = loaded[-1]
    cfg = DistilConfig(steps=req.steps, jitter=req.jitter,
                       max_seconds=math.inf if req.minutes is None else req.minutes * 60)
    say(f"drawing the teacher's views (jitter {req.jitter})")
    tv = _training_views(req, teacher, treq, loaded, cfg)
    student, k = _student(teacher, meta, req.supersample, req.output_filter)
    held = holdout_views(treq, student.cpu(), loaded) if treq.holdout else None
    say("distilling")
    crop = req.crop or max(128, max(tv.alpha.shape[1:]) // 2)
    distilled = _distilled(req, student, k, crop)
    student, opt, state = _resumed_or(req, student, cfg, distilled, teacher)
    res = distil(student, tv, held, cfg, req.device, progress, TrainConfig(crop=crop),
                 checkpoint_writer(checkpoint_dir(req.out), distilled), state, opt)
    t = meta.get("summary") or {}
    summary = {"steps": res.steps, "best_step": res.best_step, "stopped": res.stopped, "divergences": res.divergences,
               "best_holdout_psnr": _num(res.best_holdout_psnr), "holdout": treq.holdout, "size": t.get("size"),
               "frames": t.get("frames"), "size_note": note, "lr_schedule": "constant",
               "distilled": {"teacher": str(req.teacher), "teacher_holdout_psnr": t.get("best_holdout_psnr"),
                             "start_member": k, "start_holdout_psnr": res.history[0]["holdout_psnr"],
                             "views": len(tv.cameras), "jitter": req.jitter,
                             "supersample": student.config.supersample, "crop": crop,
                             "output_filter": student.config.output_filter},
               **dict(params or {})}
    student = student.cpu().eval()
    save_model(tmp, student, extra={"training": {"step": res.steps, "best_step": res.best_step,
                                                 "best_holdout_psnr": summary["best_holdout_psnr"],
                                                 "history": res.history}, "summary": summary})
    atomic_write_json(tmp / "history.json", res.history)
    outputs = {"model": "model.safetensors", "config": "config.json", "history": "history.json"}
    if held is not None:
        holdout_preview(tmp / "holdout.png", student, held)
        outputs["holdout"] = "holdout.png"
    _manifest(req, tmp, summary, outputs)
    return summary


def _distilled(req: DistilRequest, student, k: int, crop: int) -> dict:
    """What a checkpoint records of the run, and a resumed run must share (``render_distil_checkpoint.SETTINGS``)."""
    return {"teacher": teacher_id(req.teacher), "start_member": k, "jitter": req.jitter,
            "supersample": student.config.supersample, "output_filter": student.config.output_filter, "crop": crop}


def _resumed_or(req: DistilRequest, student, cfg, distilled: dict, teacher):
    """(student on the device, its optimizer, DistilState or None): the checkpoint's with ``req.resume`` when there
    is one (a warning says when there is none), else the new student's (and an earlier run's checkpoint is
    removed). ``cfg``: the DistilConfig; ``distilled``: ``_distilled``'s record of this run."""
    from neural_render.distill import distil_optimizer
    from neural_render.neural_double import ModelError
    from neural_render.training import TrainConfig

    ck = checkpoint_dir(req.out)
    student = student.to(req.device)

    def new_optimizer(s):
        return distil_optimizer(s, TrainConfig(crop=distilled["crop"]), cfg)

    if not req.resume:
        forget_checkpoint(ck)
        return student, new_optimizer(student), None
    got = load_checkpoint(ck, req, distilled, req.device, new_optimizer)
    if got is None:
        log.warning("--resume: no checkpoint in %s; distilling from the start", ck)
        return student, new_optimizer(student), None
    resumed, opt, state = got
    if resumed.signature() != teacher.signature():
        raise ModelError(f"--resume: the checkpoint in {ck} is of another rig / topology than --teacher {req.teacher}")
    log.info("--resume: going on from step %d of %s", state.step, ck)
    return resumed, opt, state


def _manifest(req: DistilRequest, tmp: Path, summary: dict, outputs: dict[str, str]) -> None:
    from core.storage import write_manifest

    write_manifest(tmp, MODEL_STAGE, inputs={"calibration": req.session / "calibration.json",
                                             "fit_params": req.fit / "params.json",
                                             "fit_mesh": req.fit / "fit_mesh.ply",
                                             "teacher_model": req.teacher / "model.safetensors"},
                   params={"steps": req.steps, "jitter": req.jitter, "device": req.device, "distilled": True,
                           **{k: v for k, v in summary.items() if k in ("actor_id", "consent_id", "production")}},
                   outputs=outputs, extra={"render_model": summary})


def _num(x: float) -> float | None:
    return round(x, 3) if x is not None and math.isfinite(x) else None
