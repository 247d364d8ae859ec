"""Training a ``NeuralDouble`` from calibrated photos of the actor and the fitted mesh.

Views are (frame, camera) pairs. Their G-buffers are rasterized once (the mesh is fixed: the learned appearance
absorbs its errors; a model with ``refine_mesh`` re-evaluates the crops' barycentrics for its learned vertex
offsets each step). Each step renders a batch of random crops that contain the person, with the training
camera's colour/exposure correction, and minimises L1 + SSIM of the render composited over the photo's backdrop
colour inside the (1 px dilated) person mask plus L1 on alpha against the mask (``TrainConfig.composite_loss``;
else L1 + SSIM on the straight RGB inside the mask). Held-out cameras (never trained on; the mean colour
correction) are rendered every ``eval_every`` steps: their PSNR inside the person mask drives early stopping,
the best state is kept, and a collapse far below it restores that state (``diverged_db``). Without held-out
cameras the training loss stands in: a window of steps whose loss jumps far above the lowest seen is a divergence
(``diverged_loss``, `LossGuard`), and the state kept is the latest one whose loss had not jumped.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as tf
from torch import Tensor

from capture.camera import Camera
from neural_render.deferred import autocast_for
from neural_render.gbuffer import GBuffer
from neural_render.metrics import masked_psnr, masked_ssim
from neural_render.neural_double import NeuralDouble
from neural_render.snapshots import Snapshot, Snapshots
from neural_render.weight_average import WeightAverage

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainViews", "TrainResult", "prepare_views", "train_neural_double", "render_views"]


@dataclass
class TrainConfig:
    """Optimisation settings of `doppel render train`."""

    iterations: int = 2000        # optimisation steps (at most)
    batch: int = 2                # views per step
    crop: int = 128               # crop side in pixels (the whole image when it is smaller)
    lr_texture: float = 1e-2      # Adam learning rate of the neural texture
    lr_network: float = 2e-3      # ... of the U-Net
    lr_color: float = 1e-3        # ... of the per-camera colour correction
    lr_rgb_texture: float = 0.0   # ... of the RGB prior texture (NeuralDoubleConfig.rgb_texture_size; 0 = frozen bake)
    w_ssim: float = 0.2           # loss = (1 - w_ssim) * L1 + w_ssim * (1 - SSIM) + w_alpha * L1(alpha)
    w_alpha: float = 0.1          # (0.5 before 2026-12-02: with the composite loss the photo's soft edges set the
                                  # alpha there, and a strong L1 to the keyed, hard-edged mask fights it)
    composite_loss: bool = True   # RGB loss on the render composited over the view's backdrop colour (median of the
                                  # photo outside the person mask), in the person mask dilated by 1 px: anti-aliased
                                  # edge pixels of the photo are person/backdrop blends, which only the composite
                                  # (colour and alpha together) can match; also the held-out PSNR's measure.
                                  # False: straight RGB inside the mask (before 2026-12-02)
    w_color_reg: float = 1e-2     # pulls the colour corrections towards identity
    grad_clip: float = 0.5        # > 0: the gradient's global norm is clipped to this before each step (0 = none);
                                  # the composite loss diverged without it on the Cycles capture (step ~250)
    lr_offset: float = 5e-5       # Adam learning rate of the mesh refinement's vertex offsets (metres per step)
    w_offset_smooth: float = 1.0  # mean squared uniform Laplacian of the vertex offsets in mm (smooth refinement)
    w_offset: float = 1e-2        # mean squared vertex offset in mm (stay near the fit)
    w_residual: float = 0.0       # L2 on the U-Net's RGB residual logits inside the mesh (0 = none): keeps the
                                  # render near its prior (the baked CGI texture) where the photos do not insist
    w_texture_detail: float = 0.0  # L2 on the neural texture's detail levels (all but the coarsest)
    weight_decay: float = 0.0     # decoupled weight decay of the U-Net (AdamW)
    view_jitter: float = 0.0      # radians: std of a random rotation of each training crop's view directions
                                  # (augmentation: view-dependent effects must vary smoothly with the view)
    gbuffer_shift: int = 0        # G-buffer samples (1 / supersample px): each training crop's G-buffer is moved
                                  # against its photo by a random whole number of samples in [-k, k] per axis
                                  # (augmentation: a view no camera trained on is out of register with its photo
                                  # by a fraction of a pixel); 0 = none. Not with refine_mesh
    lr_schedule: str = "auto"     # "constant", "cosine" or "auto". cosine: every learning rate decays from its value
                                  # to lr_final x it along a half cosine over the run (its progress: the larger of
                                  # step / iterations and elapsed / max_seconds). auto (2026-12-04; constant before):
                                  # cosine without held-out views, constant with them (early stopping and the best
                                  # held-out state end those runs; cosine scored 0.13 dB lower there). At a constant
                                  # rate 4 of 5 runs without held-out views on the demo capture collapsed (steps
                                  # 200-1300: the U-Net's activations multiplied into a saturated alpha); decayed,
                                  # none of 5 did, each ending lower (docs/benchmarks.md, "Why those runs collapsed")
    alpha_eps: float = 0.0        # > 0: the loss stops pulling alpha once it is within this of 0 or 1 (the composite
                                  # sees alpha clamped to [eps, 1 - eps], the alpha L1 has a dead zone of eps).
                                  # Without it the pull never ends: Adam turns the sigmoid's vanishing gradient into
                                  # full-size steps and the alpha logits grow all run. With 0.002 at a constant rate
                                  # two of three runs that had collapsed did not, the third collapsed later (step
                                  # ~1000 against ~580; docs/benchmarks.md, stop 40): not a cure alone; off by
                                  # default until the held-out benchmark is rerun with it
    lr_final: float = 0.1         # the cosine schedule's last learning rate, a fraction of the first
    view_sampling_power: float = 0.0  # training views are drawn with probability ~ (person pixels in the view)^p:
                                      # 0 = uniform, 1 = uniform over person pixels (close-ups drawn more often)
    refine_steps: int = 150       # NeuralDoubleConfig.refine_to_photos: steps of the mesh refinement before the bake
    refine_lr: float = 2e-4       # ... its Adam learning rate (metres per step, before the offsets' smoothing)
    refine_w_offset: float = 2e-3  # ... weight of the mean squared offset in mm (keeps it near the fit)
    refine_w_photo: float = 0.0   # ... weight of the photo-consistency of colours (0 = outlines only)
    diverged_db: float = 5.0      # a held-out PSNR this far below the best is a divergence (the composite loss can
                                  # collapse alpha to 0): the best state is restored, Adam's moments cleared and
                                  # every learning rate halved (0 = never)
    diverged_loss: float = 3.0    # without held-out views: a training loss (the mean of an evaluation window, or of
                                  # its last `LossGuard.RECENT` steps) this many times the lowest window's is a
                                  # divergence, handled as ``diverged_db``'s (0 = never). A default run without
                                  # --holdout collapsed at step ~1250 (loss 0.016 -> 0.27) and kept the collapse
    snapshots: int = 1            # states kept: the best and the next best held-out evaluations, drawn as the mean of
                                  # their renders (neural_render.snapshots; 1 = the best state alone)
    ema_decay: float = 0.0        # > 0: the held-out views are scored with, and the kept state is, an exponential
                                  # moving average of the weights with this decay per step
                                  # (neural_render.weight_average); 0 = the live weights
    eval_every: int = 100         # steps between held-out evaluations (and progress reports)
    patience: int = 6             # evaluations without a better held-out PSNR before stopping early
    plateau_drops: int = 0        # > 0: at such a plateau the best state is restored (Adam's moments cleared) and
                                  # every learning rate multiplied by plateau_factor, this many times before the
                                  # run stops early (0 = stop at the first plateau)
    plateau_factor: float = 0.3   # ... the learning-rate factor of each drop
    checkpoint_every: int = 200   # steps between checkpoints (0 = none)
    max_seconds: float = math.inf  # wall-clock budget of the run
    seed: int = 0


@dataclass
class TrainViews:
    """N views at one training size (H, W multiples of the U-Net's multiple)."""

    images: Tensor              # (N, H, W, 3) sRGB in [0, 1]
    masks: Tensor               # (N, H, W) float person masks in [0, 1]
    g: GBuffer                  # (N, H, W) G-buffers of the fitted mesh
    camera_index: Tensor        # (N,) long: index into the model's training cameras, -1 = held out
    codes: Tensor | None        # (N, K) per-view frame code or None
    names: list[str]            # "FRAME/CAMERA" of each view
    verts: Tensor | None = None      # (N, V, 3) each view's fitted mesh: only with a mesh-refining model
    cameras: Camera | None = None    # N cameras at the training size: only with a mesh-refining model
    face_idx: Tensor | None = None   # (N, sH, sW) int32 visible faces of g: only with a mesh-refining model
    backgrounds: Tensor | None = None  # (N, 3) sRGB backdrop colour of each photo (median outside the person mask)
    crop_centres: list[Tensor] | None = field(default=None, repr=False)  # per view (P, 2) long (y, x) on the CPU:
                                     # the pixels a training crop may be centred on (``_crop_boxes``), made once

    def to(self, device) -> TrainViews:
        """The same views with every tensor on ``device`` (the crop centres stay on the CPU)."""
        def mv(t):
            return None if t is None else t.to(device)

        return TrainViews(mv(self.images), mv(self.masks), self.g.to(device), mv(self.camera_index), mv(self.codes),
                          self.names, mv(self.verts), None if self.cameras is None else self.cameras.to(device=device),
                          mv(self.face_idx), mv(self.backgrounds), self.crop_centres)

    @property
    def nbytes(self) -> int:
        """Bytes of the views' tensors (images, masks, G-buffers, meshes, visible faces)."""
        ts = [self.images, self.masks, *(getattr(self.g, k) for k in ("mask", "uv", "normal", "normal_cam",
                                                                         "view_dir", "depth")),
              self.verts, self.face_idx]
        return sum(t.numel() * t.element_size() for t in ts if t is not None)

    @property
    def train_ids(self) -> Tensor:
        return (self.camera_index >= 0).nonzero()[:, 0]

    @property
    def holdout_ids(self) -> Tensor:
        return (self.camera_index < 0).nonzero()[:, 0]


@dataclass
class TrainResult:
    """What a training run did."""

    steps: int                                       # steps done in total (including resumed ones)
    best_step: int                                   # the step whose state was kept
    best_holdout_psnr: float                         # dB (nan without held-out views)
    history: list[dict] = field(default_factory=list)  # one entry per evaluation: step, seconds, loss, psnr
    stopped: str = "iterations"                      # iterations, early_stopping, time_budget
    snapshots: list[Snapshot] = field(default_factory=list)  # TrainConfig.snapshots - 1 next best states, best first
    divergences: list[dict] = field(default_factory=list)  # each divergence recovered from: step, why
    lr_schedule: str = ""                            # the learning-rate schedule the run used (constant, cosine)


def prepare_views(model: NeuralDouble, verts: Tensor, cameras: Camera, images: Tensor, masks: Tensor,
                  camera_index: Tensor, codes: Tensor | None, names: list[str]) -> TrainViews:
    """Rasterize the G-buffers of N views: verts (N, V, 3) the fitted mesh of each view's frame, cameras N,
    images (N, H, W, 3) sRGB, masks (N, H, W), camera_index (N,) (-1 = held out), codes (N, K) or None.
    A mesh-refining model (``vertex_offset``) also keeps the meshes, cameras and visible faces: its training
    steps re-evaluate the G-buffer's barycentrics for the moving mesh."""
    refine = model.config.refine_mesh
    with torch.no_grad():
        out = [model.gbuffer_fragments(verts[i:i + 1], cameras[i]) for i in range(len(names))]
    fidx = torch.cat([f.face_idx for _, f in out]).int() if refine else None
    return TrainViews(images=images, masks=masks, g=GBuffer.cat([g for g, _ in out]), camera_index=camera_index,
                      codes=codes, names=names, verts=verts if refine else None,
                      cameras=cameras.as_batch() if refine else None, face_idx=fidx,
                      backgrounds=backdrop_colours(images, masks))


def backdrop_colours(images: Tensor, masks: Tensor) -> Tensor:
    """(N, 3): the median colour of each photo (N, H, W, 3) where its person mask (N, H, W) is < 0.01 (0 when
    the person fills the photo)."""
    out = []
    for img, m in zip(images, masks, strict=True):
        bg = img[m < 0.01]
        out.append(bg.median(0).values if len(bg) else torch.zeros(3, dtype=img.dtype))
    return torch.stack(out)


def _supersample(views: TrainViews) -> int:
    """G-buffer samples per image pixel side (NeuralDoubleConfig.supersample)."""
    return views.g.mask.shape[1] // views.masks.shape[1]


def crop_centres(views: TrainViews) -> list[Tensor]:
    """Per view the (P, 2) long (y, x) pixels of the person or the mesh, on the CPU: where crops are centred."""
    H, W = views.masks.shape[1:]
    s = _supersample(views)
    out = []
    for i in range(views.masks.shape[0]):
        gm = views.g.mask[i] if s == 1 else views.g.mask[i].view(H, s, W, s).any(3).any(1)
        out.append(((views.masks[i] > 0.5) | gm).nonzero().cpu())
    return out


def views_for_training(views: TrainViews, device, share: float = 0.5) -> TrainViews:
    """The views where training reads them: on a CUDA device when they take less than ``share`` of its free
    memory (each step's crops are then cut there, with no host-to-device copy), else where they are."""
    dev = torch.device(device)
    if dev.type != "cuda" or views.images.device == dev:
        return views
    free, _ = torch.cuda.mem_get_info(dev)
    if views.nbytes > share * free:
        log.info("training views (%.1f GiB) stay in host memory: %.1f GiB free on %s", views.nbytes / 2 ** 30,
                 free / 2 ** 30, dev)
        return views
    return views.to(dev)


def _crop_boxes(views: TrainViews, ids: Tensor, crop: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """Top-left corners of crop x crop boxes, each centred on a random person (or mesh) pixel of its view."""
    if views.crop_centres is None:
        views.crop_centres = crop_centres(views)
    return boxes_around(views.crop_centres, ids.tolist(), views.masks.shape[1:], crop, gen)


def boxes_around(centres: list[Tensor], ids: list[int], size: tuple[int, int], crop: int,
                 gen: torch.Generator) -> list[tuple[int, int]]:
    """(y0, x0) top-left corners of crop x crop boxes inside an image of ``size`` (H, W), one per view of ``ids``,
    each centred on a random pixel of that view's ``centres`` (P, 2) long (y, x) and moved inside the image;
    (0, 0) for a view without any."""
    H, W = size
    out = []
    for i in ids:
        pts = centres[i]
        if len(pts) == 0:
            out.append((0, 0))
            continue
        y, x = pts[int(torch.randint(len(pts), (1,), generator=gen))].tolist()
        out.append((min(max(0, y - crop // 2), H - crop), min(max(0, x - crop // 2), W - crop)))
    return out


def _batch(views: TrainViews, ids: Tensor, crop: int, gen: torch.Generator, device, model: NeuralDouble | None = None,
           shift: int = 0):
    """(images, masks, G-buffer, camera_index, codes) of crops of views ``ids``, on ``device``. With a
    mesh-refining model the crops' G-buffers are re-evaluated for its current mesh (differentiable w.r.t. the
    vertex offsets; the visibility of the fitted mesh is kept); otherwise each G-buffer crop is moved by up to
    ``shift`` samples per axis against its photo (`TrainConfig.gbuffer_shift`)."""
    boxes = _crop_boxes(views, ids, crop, gen)
    sl = [(i, y, x) for i, (y, x) in zip(ids.tolist(), boxes, strict=True)]
    img = torch.stack([views.images[i, y:y + crop, x:x + crop] for i, y, x in sl]).to(device)
    msk = torch.stack([views.masks[i, y:y + crop, x:x + crop] for i, y, x in sl]).to(device)
    s = _supersample(views)
    if views.face_idx is not None and model is not None and model.config.refine_mesh:
        cams = Camera.stack([views.cameras[i].cropped(x, y, crop, crop) for i, y, x in sl])
        fidx = torch.stack([views.face_idx[i, y * s:(y + crop) * s, x * s:(x + crop) * s] for i, y, x in sl])
        g, _ = model.gbuffer_fragments(views.verts[ids].to(device), cams.to(device=device), fidx.to(device))
    else:
        H, W = views.masks.shape[1:]
        d = torch.randint(-shift, shift + 1, (len(sl), 2), generator=gen).tolist() if shift > 0 else [[0, 0]] * len(sl)
        g = GBuffer.cat([views.g.index([i]).crop(min(max(y * s + dy, 0), (H - crop) * s),
                                                 min(max(x * s + dx, 0), (W - crop) * s), crop * s, crop * s)
                         for (i, y, x), (dy, dx) in zip(sl, d, strict=True)])
        g = g.to(device)
    codes = None if views.codes is None else views.codes[ids].to(device)
    return img, msk, g, views.camera_index[ids].to(device), codes


def _rotate(x: Tensor, axis_angle: Tensor) -> Tensor:
    """x (B, H, W, 3) rotated by one rotation per view, axis_angle (B, 3) radians (Rodrigues)."""
    theta = axis_angle.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = (axis_angle / theta)[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    return x * c + torch.cross(k.expand_as(x), x, dim=-1) * s + k * (k * x).sum(-1, keepdim=True) * (1 - c)


def jitter_view(g: GBuffer, std: float, gen: torch.Generator) -> GBuffer:
    """The G-buffer with each view's view directions rotated by one random rotation per view (axis-angle vector
    ~ N(0, std^2 / 3) per component: RMS angle ``std`` radians): a nearby viewpoint for the U-Net's
    view-dependent inputs (training augmentation)."""
    if std <= 0:
        return g
    aa = torch.randn(g.view_dir.shape[0], 3, generator=gen) * (std / math.sqrt(3))
    vd = _rotate(g.view_dir.float(), aa.to(g.view_dir.device)).to(g.view_dir.dtype)
    return GBuffer(g.mask, g.uv, g.normal, g.normal_cam, vd, g.depth)


def photometric_loss(rgba: Tensor, img: Tensor, mask: Tensor, cfg: TrainConfig,
                     background: Tensor | None = None) -> Tensor:
    """Masked L1 + SSIM on RGB inside the person mask, L1 on alpha: rgba (B, H, W, 4), img (B, H, W, 3),
    mask (B, H, W) in [0, 1] -> scalar. With cfg.composite_loss and background (B, 3): L1 + SSIM of the render
    composited over the background colour, in the mask dilated by one pixel. cfg.alpha_eps: see TrainConfig."""
    e = cfg.alpha_eps
    if cfg.composite_loss and background is not None:
        a = rgba[..., 3:].clamp(e, 1 - e) if e > 0 else rgba[..., 3:]
        comp = rgba[..., :3] * a + background[:, None, None].to(rgba) * (1 - a)
        region = tf.max_pool2d(mask[:, None], 3, stride=1, padding=1)[:, 0] > 0
        r = region[..., None].to(rgba.dtype)
        l1 = ((comp - img).abs() * r).sum() / (3 * r.sum()).clamp_min(1)
        ssim = masked_ssim(comp, img, region)
        return (1 - cfg.w_ssim) * l1 + cfg.w_ssim * (1 - ssim) + cfg.w_alpha * _alpha_l1(rgba[..., 3], mask, e)
    m = mask[..., None]
    l1 = ((rgba[..., :3] - img).abs() * m).sum() / (3 * m.sum()).clamp_min(1)
    comp = rgba[..., :3] * m + img * (1 - m)          # outside the mask SSIM windows see the photo
    ssim = masked_ssim(comp, img, mask > 0.5)
    return (1 - cfg.w_ssim) * l1 + cfg.w_ssim * (1 - ssim) + cfg.w_alpha * _alpha_l1(rgba[..., 3], mask, e)


def _alpha_l1(alpha: Tensor, mask: Tensor, eps: float) -> Tensor:
    """Mean |alpha - mask| (B, H, W) less ``eps`` (0 where within eps: no pull towards a saturated sigmoid)."""
    d = (alpha - mask).abs()
    return (d - eps).clamp_min(0).mean() if eps > 0 else d.mean()


def view_gbuffer(model: NeuralDouble, views: TrainViews, i: int, device) -> GBuffer:
    """The G-buffer (1, sH, sW) of view i on ``device``: the stored one, or for a mesh-refining model the
    rasterization of its current mesh (as shots draw it)."""
    if views.verts is not None and model.config.refine_mesh:
        return model.gbuffer(views.verts[[i]].to(device), views.cameras[i].to(device=device))
    return views.g.index([i]).to(device)


@torch.no_grad()
def render_views(model: NeuralDouble, views: TrainViews, ids: Tensor, device, correct: bool = False) -> Tensor:
    """(n, H, W, 4) RGBA renders of views ``ids`` (one at a time), on the CPU; correct: apply the colour
    correction of training views."""
    out = []
    for i in ids.tolist():
        g = view_gbuffer(model, views, i, device)
        code = None if views.codes is None else views.codes[[i]].to(device)
        ci = views.camera_index[[i]].to(device) if correct and views.camera_index[i] >= 0 else None
        with autocast_for(device):
            out.append(model.render_gbuffer(g, code, ci).float().cpu())
    return torch.cat(out)


def holdout_psnr(model: NeuralDouble, views: TrainViews, device, composite: bool = False) -> float:
    """Mean PSNR (dB) of the held-out views inside their person masks (nan without held-out views); composite:
    of the render composited over the photo's backdrop colour (what the benchmark scores), else of its RGB."""
    ids = views.holdout_ids
    if len(ids) == 0:
        return math.nan
    rgba = render_views(model, views, ids, device)
    if composite and views.backgrounds is not None:
        bg = views.backgrounds[ids][:, None, None].cpu()
        rgba = torch.cat([rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:]), rgba[..., 3:]], -1)
    vals = [float(masked_psnr(rgba[k, ..., :3], views.images[i].cpu(), views.masks[i].cpu() > 0.5))
            for k, i in enumerate(ids.tolist())]
    return sum(vals) / len(vals)


def make_optimizer(model: NeuralDouble, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam (AdamW: decoupled weight decay on the U-Net only, when cfg.weight_decay > 0)."""
    groups = [{"params": list(model.texture.parameters()), "lr": cfg.lr_texture, "weight_decay": 0.0},
              {"params": list(model.renderer.parameters()), "lr": cfg.lr_network, "weight_decay": cfg.weight_decay},
              {"params": [model.color_A, model.color_b], "lr": cfg.lr_color, "weight_decay": 0.0}]
    if model.rgb_texture is not None and cfg.lr_rgb_texture > 0:
        groups.append({"params": list(model.rgb_texture.parameters()), "lr": cfg.lr_rgb_texture, "weight_decay": 0.0})
    if model.config.refine_mesh:
        groups.append({"params": [model.vertex_offset], "lr": cfg.lr_offset, "weight_decay": 0.0})
    return torch.optim.AdamW(groups)


def freeze_unoptimised_prior(model: NeuralDouble, opt: torch.optim.Optimizer) -> None:
    """The RGB prior texture gets gradients only when ``opt`` updates it (``lr_rgb_texture`` > 0). Frozen (the
    default) its summed texture and mip pyramid are built once instead of every step, and no gradient is
    computed for its 1024^2 texels; the other parameters' gradients and the steps are the same."""
    if model.rgb_texture is not None:
        live = {id(p) for grp in opt.param_groups for p in grp["params"]}
        model.rgb_texture.requires_grad_(any(id(p) in live for p in model.rgb_texture.parameters()))


def regularisers(model: NeuralDouble, residual: Tensor, mask: Tensor, cfg: TrainConfig) -> Tensor:
    """Colour corrections towards identity, the RGB residual (B, H, W, 4) towards 0 inside the mesh mask
    (B, H, W) bool, the neural texture's detail levels towards 0: a scalar."""
    eye = torch.eye(3, device=model.color_A.device)
    loss = cfg.w_color_reg * (((model.color_A - eye) ** 2).mean() + (model.color_b ** 2).mean())
    if cfg.w_residual > 0:
        m = mask[..., None].to(residual.dtype)
        loss = loss + cfg.w_residual * ((residual[..., :3] ** 2) * m).sum() / (3 * m.sum()).clamp_min(1)
    if cfg.w_texture_detail > 0:
        loss = loss + cfg.w_texture_detail * sum((lv ** 2).mean() for lv in model.texture.levels()[:-1])
    if model.config.refine_mesh:
        mm = model.vertex_offset * 1000.0
        loss = loss + cfg.w_offset_smooth * (mesh_laplacian(mm, model.faces) ** 2).mean() \
            + cfg.w_offset * (mm ** 2).mean()
    return loss


def mesh_laplacian(x: Tensor, faces: Tensor) -> Tensor:
    """Uniform graph Laplacian of a per-vertex scalar x (V,) over the mesh faces (F, 3): x_i minus the mean of
    its neighbours (each neighbour weighted by the faces it shares an edge with); 0 for a constant field."""
    f = faces.reshape(-1)
    nb = (x[faces.roll(1, 1)] + x[faces.roll(-1, 1)]).reshape(-1)
    total = torch.zeros_like(x).index_add(0, f, nb)
    count = torch.zeros_like(x).index_add(0, f, torch.full_like(nb, 2.0))
    return torch.where(count > 0, x - total / count.clamp_min(1), torch.zeros_like(x))


def view_probabilities(views: TrainViews, power: float) -> Tensor:
    """(n_train,) probabilities of drawing each training view: ~ (person-mask pixels)^power (uniform at 0)."""
    area = views.masks[views.train_ids].flatten(1).sum(1).clamp_min(1.0).double()
    w = area ** power
    return (w / w.sum()).float()


def resolve_schedule(cfg: TrainConfig, held_out: bool) -> TrainConfig:
    """``cfg`` with an "auto" learning-rate schedule made concrete: constant when the run has held-out views
    (``held_out``), cosine when it has not."""
    if cfg.lr_schedule != "auto":
        return cfg
    return replace(cfg, lr_schedule="constant" if held_out else "cosine")


def lr_factor(cfg: TrainConfig, step: int, seconds: float) -> float:
    """The learning-rate multiplier of ``cfg.lr_schedule`` (constant or cosine; see `resolve_schedule` for auto)
    at ``step`` after ``seconds`` of training."""
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"TrainConfig.lr_schedule must be constant or cosine (auto: resolve_schedule), got "
                         f"{cfg.lr_schedule!r}")
    p = min(1.0, max(step / max(1, cfg.iterations), seconds / cfg.max_seconds if cfg.max_seconds > 0 else 0.0))
    return cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * p))


def set_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    """Every parameter group's learning rate = its initial one (``initial_lr``, recorded on first use) x factor."""
    for group in opt.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


def _step(model, opt, views: TrainViews, cfg: TrainConfig, gen, device, probs: Tensor | None = None) -> float:
    """One optimisation step on a random batch of training crops (views drawn with ``probs``, uniform when
    None); returns the loss."""
    tr = views.train_ids
    n = min(cfg.batch, len(tr))
    pick = torch.randint(len(tr), (n,), generator=gen) if probs is None else \
        torch.multinomial(probs, n, replacement=True, generator=gen)
    ids = tr[pick]
    H, W = views.masks.shape[1:]
    crop = min(cfg.crop, H, W)
    img, msk, g, ci, codes = _batch(views, ids, crop, gen, device, model, cfg.gbuffer_shift)
    bg = None if views.backgrounds is None else views.backgrounds[ids].to(device)
    g = jitter_view(g, cfg.view_jitter, gen)
    with autocast_for(device):
        rgba, res = model.render_gbuffer(g, codes, ci, with_residual=True)
    on_mesh = g.mask if g.mask.shape == msk.shape else \
        tf.max_pool2d(g.mask[:, None].float(), _supersample(views))[:, 0] > 0
    loss = photometric_loss(rgba.float(), img, msk, cfg, bg) + regularisers(model, res.float(), on_mesh, cfg)
    return optimiser_step(opt, loss, cfg.grad_clip)


def optimiser_step(opt: torch.optim.Optimizer, loss: Tensor, grad_clip: float) -> float:
    """Back-propagate ``loss``, clip the gradients' global norm to ``grad_clip`` (0 = none), step; returns the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for grp in opt.param_groups for p in grp["params"]], grad_clip)
    opt.step()
    return float(loss.detach())


def _check_config(cfg: TrainConfig, model: NeuralDouble) -> None:
    if cfg.gbuffer_shift < 0 or (cfg.gbuffer_shift and model.config.refine_mesh):
        raise ValueError(f"TrainConfig.gbuffer_shift must be >= 0 and 0 with refine_mesh, got {cfg.gbuffer_shift}")
    if not 0.0 <= cfg.alpha_eps < 0.5:
        raise ValueError(f"TrainConfig.alpha_eps must be in [0, 0.5), got {cfg.alpha_eps}")


def train_neural_double(model: NeuralDouble, views: TrainViews, cfg: TrainConfig, device="cpu",
                        optimizer: torch.optim.Adam | None = None, start_step: int = 0,
                        progress: Callable[[int, int, float, float], None] | None = None,
                        checkpoint: Callable[[NeuralDouble, torch.optim.Adam, dict], None] | None = None,
                        best: tuple[float, int] | None = None) -> TrainResult:
    """Optimise ``model`` (on ``device``) on the training views; keeps the state with the best held-out PSNR.

    optimizer/start_step/best (psnr, step): a resumed run's state. progress(step, total, loss, holdout_psnr)
    every ``eval_every`` steps; checkpoint(model, optimizer, state) every ``checkpoint_every`` steps (state: step,
    best_holdout_psnr, best_step, seconds of this run so far, this run's history up to the step).
    """
    if len(views.train_ids) == 0:
        raise ValueError("train_neural_double: no training views (every camera is held out)")
    _check_config(cfg, model)
    cfg = resolve_schedule(cfg, len(views.holdout_ids) > 0)
    opt = optimizer or make_optimizer(model, cfg)
    freeze_unoptimised_prior(model, opt)
    gen = torch.Generator().manual_seed(cfg.seed + start_step)
    t0 = time.perf_counter()
    best_psnr, best_step = best if best is not None else (-math.inf, start_step)
    best_state = copy.deepcopy(model.state_dict())
    res = TrainResult(steps=start_step, best_step=best_step, best_holdout_psnr=best_psnr, lr_schedule=cfg.lr_schedule)
    bad, drops, losses, step = 0, 0, [], start_step
    probs = view_probabilities(views, cfg.view_sampling_power).cpu() if cfg.view_sampling_power else None
    views = views_for_training(views, device)
    lr_scale, guard = 1.0, LossGuard(cfg.diverged_loss)
    avg = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    pool = Snapshots(cfg.snapshots)
    while step < cfg.iterations:
        model.train()
        set_lr(opt, lr_scale * lr_factor(cfg, step, time.perf_counter() - t0))
        losses.append(_step(model, opt, views, cfg, gen, device, probs))
        if avg is not None:
            avg.update(model)
        step += 1
        last = step >= cfg.iterations or time.perf_counter() - t0 > cfg.max_seconds
        if step % cfg.eval_every == 0 or last:
            model.eval()
            with avg.applied(model) if avg is not None else contextlib.nullcontext():
                psnr = holdout_psnr(model, views, device, cfg.composite_loss)
                healthy = not math.isnan(psnr) or guard.healthy(losses)
                improved = (math.isnan(psnr) and healthy) or psnr > best_psnr
                if improved:                      # the weights just scored (the average, when there is one)
                    best_state = copy.deepcopy(model.state_dict())
                pool.offer(psnr, step, model)
            loss = sum(losses) / len(losses)
            losses = []
            res.history.append({"step": step, "seconds": round(time.perf_counter() - t0, 2), "loss": round(loss, 5),
                                "holdout_psnr": None if math.isnan(psnr) else round(psnr, 3)})
            if improved:
                best_psnr, best_step, bad = psnr, step, 0
            else:
                bad += 1
                if not healthy or (cfg.diverged_db > 0 and psnr < best_psnr - cfg.diverged_db):
                    why = guard.why(loss, step) if not healthy else \
                        f"held-out PSNR {psnr:.2f} dB at step {step}, {best_psnr - psnr:.2f} dB below the best"
                    lr_scale = recover(model, opt, best_state, lr_scale, why)
                    res.divergences.append({"step": step, "why": why})
                    avg = WeightAverage(model, cfg.ema_decay) if avg is not None else None
            if progress:
                progress(step, cfg.iterations, loss, psnr)
            if bad >= cfg.patience and drops < cfg.plateau_drops:
                drops, bad = drops + 1, 0
                lr_scale = restore_best(model, opt, best_state, lr_scale * cfg.plateau_factor,
                                        f"no better held-out PSNR for {cfg.patience} evaluations at step {step}")
                avg = WeightAverage(model, cfg.ema_decay) if avg is not None else None
            elif bad >= cfg.patience:
                res.stopped = "early_stopping"
                break
        if checkpoint and cfg.checkpoint_every and (step % cfg.checkpoint_every == 0):
            checkpoint(model, opt, {"step": step, "best_holdout_psnr": _num(best_psnr), "best_step": best_step,
                                    "seconds": round(time.perf_counter() - t0, 2), "history": list(res.history)})
        if time.perf_counter() - t0 > cfg.max_seconds:
            res.stopped = "time_budget"
            break
    model.load_state_dict(best_state)
    res.steps, res.best_step, res.best_holdout_psnr = step, best_step, best_psnr
    res.snapshots = pool.others(best_step)
    return res


def recover(model: NeuralDouble, opt: torch.optim.Optimizer, best_state: dict, lr_scale: float, why: str) -> float:
    """After a divergence (``why``: what showed it): the best state back in ``model``, Adam's moments cleared;
    returns the halved learning-rate scale."""
    return restore_best(model, opt, best_state, lr_scale / 2, f"{why}: diverged", logging.WARNING)


class LossGuard:
    """A divergence seen in the training loss, for runs without held-out views: an evaluation window whose mean
    loss, or the mean of its last `RECENT` steps (a collapse just before the evaluation, in the state it would
    keep), is more than ``factor`` times the lowest healthy window's mean (factor 0: never)."""

    RECENT = 20

    def __init__(self, factor: float):
        self.factor, self.lowest = factor, math.inf

    def healthy(self, losses: list[float]) -> bool:
        """Whether the window of step losses (oldest first) is not a divergence; a healthy one may lower the bar."""
        if not losses or self.factor <= 0:
            return True
        window, recent = sum(losses) / len(losses), sum(losses[-self.RECENT:]) / len(losses[-self.RECENT:])
        ok = math.isfinite(window) and math.isfinite(recent) and (
            not math.isfinite(self.lowest) or max(window, recent) <= self.factor * self.lowest)
        if ok:
            self.lowest = min(self.lowest, window)
        return ok

    def why(self, loss: float, step: int) -> str:
        """The log line's reason for a window of mean ``loss`` ending at ``step``."""
        return (f"training loss {loss:.4g} in the steps before {step}, more than {self.factor:g} x the lowest "
                f"window's {self.lowest:.4g}")


def restore_best(model: NeuralDouble, opt: torch.optim.Optimizer, best_state: dict, lr_scale: float, why: str,
                 level: int = logging.INFO) -> float:
    """The best state back in ``model`` and Adam's moments cleared, logged with ``why``; returns ``lr_scale``
    (the new learning-rate scale)."""
    log.log(level, "%s; restoring the best state, learning rates x %.3g", why, lr_scale)
    model.load_state_dict(best_state)
    opt.state.clear()
    return lr_scale


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def load_optimizer_state(model: NeuralDouble, opt: torch.optim.Adam, tensors: dict[str, Tensor],
                         steps: dict[str, float]) -> None:
    """Restore Adam moments saved by ``save_model(..., optimizer=...)`` (``opt.NAME.exp_avg`` tensors)."""
    for name, p in model.named_parameters():
        a, b = tensors.get(f"opt.{name}.exp_avg"), tensors.get(f"opt.{name}.exp_avg_sq")
        if a is None or b is None:
            continue
        opt.state[p] = {"step": torch.tensor(steps.get(name, 0.0)), "exp_avg": a.to(p), "exp_avg_sq": b.to(p)}
