"""Distillation: one neural double trained to draw what an ensemble of them draws (with render-time jitter).

An ensemble (``neural_render.ensemble``) and render-time jitter (``neural_render.jitter``) score better on the views
no camera trained on than one model drawn once, at K x N times the render cost. Here a student, started from the
ensemble's best member, learns the teacher's jittered ensemble renders: at the training cameras and at cameras on
the paths between neighbouring training cameras (``between_cameras``; no photo exists there, only the teacher's
answer), on each view's own mesh (every fitted frame of a take). Its render costs one model and one pass. On
the Cycles benchmark (docs/benchmarks.md, "Distillation") the student kept 40-55 % of what the teacher (2
members, jitter 4) gains over its best member on held-out views (+0.27 to +0.32 dB of +0.56 to +0.69).
Drawn through an output filter it learns with (``neural_render.output_filter``; `doppel render distil` sets
w = 0.08), six students scored +3.03 to +3.21 dB over the CGI baseline on held-out views, drawn once.

The student's loss is the trainer's (``training.photometric_loss``: the composite over the backdrop colour and
the teacher's alpha), drawn with the mean colour correction (the teacher draws new views so). The held-out views,
when there are any, choose the state kept, as in training.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as tf
from scipy.spatial.transform import Rotation, Slerp
from torch import Tensor, nn

from capture.camera import Camera
from neural_render.deferred import autocast_for
from neural_render.jitter import jitter_offsets, jittered_render
from neural_render.neural_double import NeuralDouble
from neural_render.training import (
    TrainConfig,
    TrainResult,
    TrainViews,
    boxes_around,
    freeze_unoptimised_prior,
    holdout_psnr,
    make_optimizer,
    optimiser_step,
    photometric_loss,
    regularisers,
    restore_best,
    set_lr,
)

__all__ = ["DistilConfig", "DistilState", "TeacherViews", "between_cameras", "teacher_views", "distil",
           "distil_optimizer"]


@dataclass
class DistilConfig:
    """Settings of `doppel render distil`."""

    steps: int = 1000             # optimisation steps (at most)
    lr_scale: float = 0.3         # x the trainer's learning rates (TrainConfig): the student starts trained; at
                                  # 1.0 it scored 0.08 dB lower on the benchmark's held-out views
    neighbours: int = 2           # each training camera is joined to this many nearest (by viewing direction)
    positions: tuple[float, ...] = (0.0, 1 / 3, 2 / 3)  # where on each join the teacher is drawn (0: the camera)
    jitter: int = 4               # teacher renders per view at sub-pixel shifts (``teacher_views``)
    eval_every: int = 50          # steps between held-out evaluations
    checkpoint_every: int = 200   # steps between checkpoints (at an evaluation; 0 = none): the student, its Adam
                                  # moments and its best state, a few times the model's size each
    patience: int = 12            # evaluations without a better held-out PSNR before stopping early
    max_seconds: float = math.inf  # wall-clock budget of the optimisation
    seed: int = 0


@dataclass
class TeacherViews:
    """M views drawn by the teacher: what the student learns."""

    images: Tensor          # (M, H, W, 3) sRGB: the teacher's render composited over ``background``
    alpha: Tensor           # (M, H, W) the teacher's alpha in [0, 1]
    cameras: Camera         # M cameras at H x W
    verts: Tensor           # (M, V, 3) the mesh each was drawn on, world metres
    background: Tensor      # (3,) sRGB backdrop colour
    centres: list[Tensor]   # per view (P, 2) long (y, x): pixels a training crop may be centred on (alpha > 0.5)


def between_cameras(cameras: Camera, neighbours: int = 2, positions: tuple[float, ...] = (0.0, 1 / 3, 2 / 3)
                    ) -> Camera:
    """Cameras on the joins between each of N cameras (a batch of one image size) and its ``neighbours`` nearest by
    viewing direction: at each position t of a join (a, b), the rotation slerped from a's to b's, the centre and
    the intrinsics linearly interpolated. t = 0 is camera a itself (each camera once). Returns a batch of M
    cameras named ``A~B@t``. ValueError for fewer than two cameras or a position outside [0, 1)."""
    n = len(cameras)
    if n < 2 or neighbours < 1:
        raise ValueError(f"between_cameras: needs >= 2 cameras and >= 1 neighbour, got {n} and {neighbours}")
    if any(not 0.0 <= t < 1.0 for t in positions):
        raise ValueError(f"between_cameras: positions must be in [0, 1), got {positions}")
    axes = cameras.R[:, 2]
    joins = set()
    for i in range(n):
        cos = axes @ axes[i]
        cos[i] = -math.inf
        joins.update((min(i, j), max(i, j)) for j in cos.argsort(descending=True)[:min(neighbours, n - 1)].tolist())
    out = [cameras[i] for i in range(n)] if 0.0 in positions else []
    centres = cameras.center
    for i, j in sorted(joins):
        a, b = cameras[i], cameras[j]
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a.R.double().cpu().numpy(),
                                                                  b.R.double().cpu().numpy()])))
        for t in (t for t in positions if t > 0):
            R = torch.from_numpy(slerp(t).as_matrix()).to(a.R)
            C = (1 - t) * centres[i] + t * centres[j]
            out.append(Camera(K=(1 - t) * a.K + t * b.K, R=R, t=-(R @ C), width=a.width, height=a.height,
                              name=f"{a.name}~{b.name}@{t:.2f}"))
    return Camera.stack(out)


@torch.no_grad()
def teacher_views(teacher: nn.Module, verts: Tensor, cameras: Camera, background: Tensor, jitter: int = 4,
                  device="cpu") -> TeacherViews:
    """The teacher's renders of verts (V, 3), or (M, V, 3) one mesh per view (e.g. the fitted frames of a take), in
    each of the M cameras: the mean of ``jitter`` sub-pixel-shifted renders (new views: the mean colour
    correction), composited over ``background`` (3,) sRGB. On the CPU."""
    imgs, alphas = [], []
    verts = verts.float().cpu()
    verts = verts[None].expand(len(cameras), -1, -1) if verts.dim() == 2 else verts
    if len(verts) != len(cameras):
        raise ValueError(f"teacher_views: {len(verts)} meshes for {len(cameras)} cameras")
    bg = background.float().cpu()
    for i in range(len(cameras)):
        cam, v = cameras[i].to(device=device), verts[i].to(device)
        with autocast_for(device):
            rgba = jittered_render(lambda c, v=v: teacher(v, c).float(), cam, jitter_offsets(jitter))[0].cpu()
        a = rgba[..., 3:]
        imgs.append(rgba[..., :3] * a + bg * (1 - a))
        alphas.append(a[..., 0])
    alpha = torch.stack(alphas)
    return TeacherViews(torch.stack(imgs), alpha, cameras.to(device="cpu"), verts.contiguous(), bg,
                        [(a > 0.5).nonzero() for a in alpha])


def _crops(tv: TeacherViews, ids: list[int], crop: int, gen: torch.Generator) -> tuple[list, Camera]:
    """(per view (y0, x0), the crops' cameras): crop x crop windows centred on random person pixels."""
    boxes = boxes_around(tv.centres, ids, tv.alpha.shape[1:], crop, gen)
    return boxes, Camera.stack([tv.cameras[i].cropped(x, y, crop, crop) for i, (y, x) in zip(ids, boxes,
                                                                                              strict=True)])


def _distil_step(student: NeuralDouble, opt, tv: TeacherViews, cfg: TrainConfig, gen: torch.Generator, device) -> float:
    """One step on a batch of crops of the teacher's views; returns the loss. The crops' G-buffers are rasterized
    for their own cameras (nothing stored per view but the teacher's image)."""
    H, W = tv.alpha.shape[1:]
    crop = min(cfg.crop, H, W)
    ids = torch.randint(len(tv.cameras), (min(cfg.batch, len(tv.cameras)),), generator=gen).tolist()
    boxes, cams = _crops(tv, ids, crop, gen)
    img = torch.stack([tv.images[i, y:y + crop, x:x + crop] for i, (y, x) in zip(ids, boxes, strict=True)]).to(device)
    alpha = torch.stack([tv.alpha[i, y:y + crop, x:x + crop] for i, (y, x) in zip(ids, boxes, strict=True)]).to(device)
    with torch.no_grad():
        g = student.gbuffer(tv.verts[ids].to(device), cams.to(device=device))
    with autocast_for(device):
        rgba, res = student.render_gbuffer(g, None, None, with_residual=True)
    s = student.config.supersample
    on_mesh = g.mask if s == 1 else tf.max_pool2d(g.mask[:, None].float(), s)[:, 0] > 0
    bg = tv.background.to(device)[None].expand(len(ids), 3)
    loss = photometric_loss(rgba.float(), img, alpha, cfg, bg) + regularisers(student, res.float(), on_mesh, cfg)
    return optimiser_step(opt, loss, cfg.grad_clip)


@dataclass
class DistilState:
    """Where a distillation stands after an evaluation: what a checkpoint keeps and ``distil(resume=...)`` goes on
    from (with the student's weights and the optimizer's moments, saved beside it)."""

    step: int
    best_psnr: float                 # the held-out PSNR of ``best_state`` (nan without held-out views)
    best_step: int
    best_state: dict[str, Tensor]    # the student's state kept so far
    bad: int = 0                     # evaluations since the last better one
    lr_scale: float = 1.0            # after divergences: the learning rates' factor
    seconds: float = 0.0             # optimisation time of the runs so far
    history: list[dict] | None = None
    divergences: list[dict] | None = None
    generator: Tensor | None = None  # the crops' random generator's state (uint8), so a resumed run draws the crops
                                     # an uninterrupted one would have

    def as_json(self) -> dict:
        """The JSON-able part (``best_state`` is saved as tensors); its ``step`` is what `resume_hint` shows."""
        return {"step": self.step, "best_holdout_psnr": _rounded(self.best_psnr), "best_step": self.best_step,
                "bad": self.bad, "lr_scale": self.lr_scale, "seconds": round(self.seconds, 2),
                "history": self.history or [], "divergences": self.divergences or []}

    @classmethod
    def from_json(cls, d: dict, best_state: dict[str, Tensor], generator: Tensor | None = None) -> DistilState:
        psnr = d.get("best_holdout_psnr")
        return cls(int(d["step"]), math.nan if psnr is None else float(psnr), int(d["best_step"]), best_state,
                   int(d.get("bad", 0)), float(d.get("lr_scale", 1.0)), float(d.get("seconds", 0.0)),
                   list(d.get("history") or []), list(d.get("divergences") or []), generator)


def distil(student: NeuralDouble, tv: TeacherViews, held: TrainViews | None, cfg: DistilConfig, device="cpu",
           progress: Callable[[int, int, float, float], None] | None = None,
           train: TrainConfig | None = None,
           checkpoint: Callable[[NeuralDouble, torch.optim.Optimizer, DistilState], None] | None = None,
           resume: DistilState | None = None, optimizer: torch.optim.Optimizer | None = None) -> TrainResult:
    """Train ``student`` (on ``device``) to draw the teacher's views ``tv``; keeps the state with the best PSNR on
    the held-out views of ``held`` (composited over their backdrops, as training scores them; the student's
    starting state counts), or the last state without any. A held-out PSNR more than ``train.diverged_db`` under
    the best restores the best state at half the learning rates. progress(step, total, loss, psnr) every
    ``eval_every`` steps, and checkpoint(student, optimizer, state) after those of them on ``checkpoint_every``.
    ``train``: the loss and learning rates (TrainConfig()'s by default), x ``lr_scale``. ``resume``: a checkpoint's
    state, ``student`` holding its weights and ``optimizer`` (made by ``distil_optimizer``) its moments: the run goes
    on from its step, as the uninterrupted run would have (the same crops, the same steps)."""
    tc = _scaled(train or TrainConfig(), cfg)
    opt = optimizer or distil_optimizer(student, train, cfg)      # scales ``train`` itself: once
    has_held = held is not None and len(held.holdout_ids) > 0

    def score() -> float:
        student.eval()
        return holdout_psnr(student, held, device, tc.composite_loss) if has_held else math.nan

    st = resume or DistilState(0, score(), 0, copy.deepcopy(student.state_dict()))
    if resume is None:
        st.history = [{"step": 0, "seconds": 0.0, "loss": None, "holdout_psnr": _rounded(st.best_psnr)}]
    st.history, st.divergences = list(st.history or []), list(st.divergences or [])
    gen = torch.Generator().manual_seed(cfg.seed)
    if st.generator is not None:
        gen.set_state(st.generator)
    t0, before, losses, stopped = time.perf_counter(), st.seconds, [], None
    while st.step < cfg.steps:
        student.train()
        set_lr(opt, st.lr_scale)
        losses.append(_distil_step(student, opt, tv, tc, gen, device))
        st.step += 1
        over = time.perf_counter() - t0 > cfg.max_seconds
        if st.step % cfg.eval_every and st.step < cfg.steps and not over:
            continue
        psnr, loss = score(), sum(losses) / len(losses)
        losses, st.seconds = [], before + time.perf_counter() - t0
        st.history.append({"step": st.step, "seconds": round(st.seconds, 2), "loss": round(loss, 5),
                           "holdout_psnr": _rounded(psnr)})
        _judge(st, psnr, has_held, student, opt, tc)
        st.generator = gen.get_state()
        if checkpoint and cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
            checkpoint(student, opt, st)
        if progress:
            progress(st.step, cfg.steps, loss, psnr)
        if over or st.bad >= cfg.patience:
            stopped = "time_budget" if over else "early_stopping"
            break
    student.load_state_dict(st.best_state)
    return TrainResult(steps=st.step, best_step=st.best_step, best_holdout_psnr=st.best_psnr, lr_schedule="constant",
                       history=st.history, divergences=st.divergences, stopped=stopped or "iterations")


def _scaled(tc: TrainConfig, cfg: DistilConfig) -> TrainConfig:
    return replace(tc, lr_texture=tc.lr_texture * cfg.lr_scale, lr_network=tc.lr_network * cfg.lr_scale,
                   lr_color=tc.lr_color * cfg.lr_scale, lr_rgb_texture=tc.lr_rgb_texture * cfg.lr_scale, seed=cfg.seed)


def distil_optimizer(student: NeuralDouble, train: TrainConfig | None, cfg: DistilConfig) -> torch.optim.Optimizer:
    """The student's optimizer (the trainer's, learning rates x ``cfg.lr_scale``; the frozen RGB prior left out)."""
    opt = make_optimizer(student, _scaled(train or TrainConfig(), cfg))
    freeze_unoptimised_prior(student, opt)
    return opt


def _judge(st: DistilState, psnr: float, has_held: bool, student: NeuralDouble, opt, tc: TrainConfig) -> None:
    """After an evaluation: a better held-out PSNR (or no held-out views) keeps the state; one more than
    ``tc.diverged_db`` under the best restores the best state at half the learning rates."""
    if not has_held or psnr > st.best_psnr:
        st.best_psnr, st.best_step, st.bad = psnr, st.step, 0
        st.best_state = copy.deepcopy(student.state_dict())
        return
    st.bad += 1
    if tc.diverged_db > 0 and psnr < st.best_psnr - tc.diverged_db:
        st.lr_scale = restore_best(student, opt, st.best_state, st.lr_scale / 2,
                                   f"held-out PSNR {psnr:.2f} dB at step {st.step}: diverged")
        st.divergences.append({"step": st.step, "why": f"held-out PSNR {psnr:.2f} dB"})


def _rounded(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 3)
