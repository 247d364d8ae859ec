"""``NeuralDouble``: a neural texture + deferred neural renderer bound to one mesh topology and UV layout, with
per-camera colour correction for training and the baked CGI texture beside it; saved as safetensors + JSON.

A model folder (the output of `doppel render train`):

    model.safetensors   every tensor: texture pyramid (texture.level*), U-Net (renderer.*), colour correction
                        (color_A (N, 3, 3), color_b (N, 3), one per training camera), mesh buffers (faces,
                        uvs, face_uvs, fitted_verts (frames, V, 3)), cgi_texture (S, S, 3) linear RGB
    config.json         model config, camera names, topology signature, frames, training state
    manifest.json       the stage manifest (written by the caller)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as tf
from torch import Tensor, nn

from capture.camera import Camera
from core.errors import DoppelError
from core.storage import atomic_open, atomic_write_json
from neural_render.deferred import DeferredNeuralRenderer
from neural_render.fragments import Fragments
from neural_render.gbuffer import GBuffer, gbuffer_fragments
from neural_render.neural_texture import NeuralTexture
from neural_render.output_filter import check_output_filter, filter_rgba
from neural_render.shading import vertex_normals
from neural_render.texture import linear_to_srgb

__all__ = ["NeuralDoubleConfig", "NeuralDouble", "topology_signature", "save_model", "load_model",
           "ModelError", "MODEL_FILE", "CONFIG_FILE", "MODEL_SCHEMA_VERSION"]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_SCHEMA_VERSION = 1


class ModelError(DoppelError):
    """A neural double model folder is missing, corrupt, or does not fit the mesh / rig it is used with."""


@dataclass
class NeuralDoubleConfig:
    """Architecture of a neural double."""

    channels: int = 16          # neural texture channels (the first 3 start from the baked RGB texture)
    texture_size: int = 256     # neural texture side in texels
    levels: int = 4             # Laplacian pyramid levels of the neural texture
    width: int = 16             # U-Net channels at full resolution
    depth: int = 3              # U-Net down/up steps (image sides must be multiples of 2^depth)
    code_dim: int = 0           # per-frame code (pose / expression) size; 0 = none
    dropout: float = 0.0        # training-time channel dropout of the learned features (0 = none)
    rgb_texture_size: int = 0   # > 0: feature channels 0-2 (the RGB prior) come from a 3-channel texture
                                # of this size (more detail than texture_size), 0 = from the neural texture
    supersample: int = 1        # G-buffer samples per pixel side: the neural texture is sampled at s x s points per
                                # pixel and averaged (anti-aliased edges, fractional coverage as the alpha prior);
                                # the U-Net runs at the output size
    refine_mesh: bool = False   # learn a per-vertex offset along the normal (metres, ``vertex_offset``) that moves
                                # the fitted mesh where the photos disagree with it; every render applies it
    refine_to_photos: bool = False  # before the bake, the fitted mesh is moved along its normals to the training
                                    # photos (neural_render.photo_refine: outlines to the photos' mattes); the
                                    # offsets are kept in ``vertex_offset`` (frozen while training) and every
                                    # render (neural and CGI) applies them
    view_inputs: str = "full"   # the U-Net's viewpoint inputs: "full" (view direction everywhere, camera-frame
                                # normals), "mesh" (view direction on the mesh only), "none" (neither)
    output_filter: float = 0.0  # every render smoothed by [w, 1 - 2w, w] on each axis (``neural_render.output_filter``:
                                # render-time jitter's hedge in one pass); 0 = none
    cameras: list[str] = field(default_factory=list)  # training cameras (one colour correction each)

    def __post_init__(self):
        self.output_filter = check_output_filter(self.output_filter)


def topology_signature(faces: Tensor | np.ndarray, uvs: Tensor | np.ndarray, face_uvs: Tensor | np.ndarray,
                       num_vertices: int) -> str:
    """SHA-256 (16 hex digits) of the vertex count, faces and UV layout: equal for meshes a model can drive."""
    h = hashlib.sha256()
    h.update(str(int(num_vertices)).encode())
    for a in (faces, face_uvs):
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes())
    h.update(np.round(np.asarray(uvs, dtype=np.float64), 5).astype(np.float32).tobytes())
    return h.hexdigest()[:16]


class NeuralDouble(nn.Module):
    """Neural texture + U-Net + per-camera colour correction, with the mesh buffers it was trained on."""

    def __init__(self, config: NeuralDoubleConfig, faces: Tensor, uvs: Tensor, face_uvs: Tensor,
                 fitted_verts: Tensor, cgi_texture: Tensor | None = None, seed: int = 0):
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.texture = NeuralTexture(config.channels, config.texture_size, config.levels, generator=gen)
        self.rgb_texture = NeuralTexture(3, config.rgb_texture_size, config.levels + 1, init_std=0.0) \
            if config.rgb_texture_size else None
        self.renderer = DeferredNeuralRenderer(config.channels, config.width, config.depth, config.code_dim,
                                               dropout=config.dropout, view_inputs=config.view_inputs)
        n = max(1, len(config.cameras))
        self.color_A = nn.Parameter(torch.eye(3).repeat(n, 1, 1))
        self.color_b = nn.Parameter(torch.zeros(n, 3))
        self.register_buffer("faces", torch.as_tensor(faces).long())
        self.register_buffer("uvs", torch.as_tensor(uvs).float())
        self.register_buffer("face_uvs", torch.as_tensor(face_uvs).long())
        fv = torch.as_tensor(fitted_verts).float()
        self.register_buffer("fitted_verts", fv[None] if fv.dim() == 2 else fv)
        self.register_buffer("cgi_texture", torch.zeros(1, 1, 3) if cgi_texture is None
                             else torch.as_tensor(cgi_texture).float())
        self.register_parameter("vertex_offset", nn.Parameter(torch.zeros(self.fitted_verts.shape[1]),
                                                              requires_grad=config.refine_mesh)
                                if config.refine_mesh or config.refine_to_photos else None)

    @torch.no_grad()
    def init_from_bake(self, texture_linear: Tensor) -> None:
        """Start the RGB prior (feature channels 0-2) from a baked texture (S, S, 3) linear RGB."""
        srgb = linear_to_srgb(torch.as_tensor(texture_linear).float())
        (self.rgb_texture or self.texture).set_channels(0, srgb)

    @property
    def num_vertices(self) -> int:
        return int(self.fitted_verts.shape[1])

    def signature(self) -> str:
        return topology_signature(self.faces.cpu(), self.uvs.cpu(), self.face_uvs.cpu(), self.num_vertices)

    def surface(self, verts: Tensor) -> Tensor:
        """verts (..., V, 3) moved along their vertex normals by ``vertex_offset`` (V,) metres when the model has
        one (learned: ``refine_mesh``; fitted to the photos before training: ``refine_to_photos``), else verts
        unchanged."""
        if self.vertex_offset is None:
            return verts
        return verts + self.vertex_offset[:, None].to(verts) * vertex_normals(verts.detach(), self.faces)

    def gbuffer(self, verts: Tensor, cameras: Camera) -> GBuffer:
        """G-buffer of verts (V, 3) or (B, V, 3) (this model's topology, refined by ``surface``) in B cameras, at
        ``supersample`` times the cameras' image size (``render_gbuffer`` returns images of the cameras' size)."""
        return self.gbuffer_fragments(verts, cameras)[0]

    def gbuffer_fragments(self, verts: Tensor, cameras: Camera,
                          face_idx: Tensor | None = None) -> tuple[GBuffer, Fragments]:
        """(G-buffer, Fragments) as ``gbuffer``; face_idx (B, sH, sW): keep that visibility and re-evaluate only
        the barycentrics (``neural_render.gbuffer.gbuffer_fragments``; training's cheap per-step G-buffer)."""
        if verts.shape[-2] != self.num_vertices:
            raise ModelError(f"the mesh has {verts.shape[-2]} vertices; the model was trained on {self.num_vertices}")
        s = self.config.supersample
        return gbuffer_fragments(self.surface(verts.to(self.uvs)), self.faces, self.uvs, self.face_uvs,
                                 cameras.scaled(s) if s > 1 else cameras, face_idx=face_idx)

    def color_correction(self, camera_index: Tensor | None) -> tuple[Tensor, Tensor]:
        """(A (B, 3, 3), b (B, 3)): the colour correction rgb' = A rgb + b of training cameras camera_index (B,),
        or for new views (camera_index None) the mean of every training camera's (A (1, 3, 3), b (1, 3)): the
        network and the corrections can drift together (a common colour change of every correction that the
        network undoes), and new views must get the average training camera's colours, not the network's raw
        output. (Mean-centring the parameters instead would give every camera's correction a gradient at every
        step, which Adam's normalisation turns into full-size noise.)"""
        if camera_index is None:
            return self.color_A.mean(0, keepdim=True), self.color_b.mean(0, keepdim=True)
        return self.color_A[camera_index], self.color_b[camera_index]

    def render_gbuffer(self, g: GBuffer, code: Tensor | None = None, camera_index: Tensor | None = None,
                       with_residual: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, H, W, 4) RGBA in [0, 1] (sRGB-encoded RGB, straight alpha) from a G-buffer. camera_index (B,) long:
        apply each training camera's colour correction (training); None: the mean correction (new views).
        with_residual: also the U-Net's residual logits (B, H, W, 4) (see DeferredNeuralRenderer.forward)."""
        return self.render_features(*self.pooled_features(g), code, camera_index, with_residual)

    def pooled_features(self, g: GBuffer) -> tuple[Tensor, GBuffer, Tensor | None]:
        """What the U-Net reads, from a G-buffer at ``supersample`` times the output size: (features (B, H, W, C)
        sampled from the neural texture(s), the G-buffer pooled to H x W, coverage (B, H, W) or None without
        supersampling). Per pixel, but for the texture's mip level, read from each sample's neighbours."""
        feats = self.texture(g.uv.to(self.uvs.dtype), g.mask)
        if self.rgb_texture is not None:
            feats = torch.cat([self.rgb_texture(g.uv.to(self.uvs.dtype), g.mask), feats[..., 3:]], -1)
        cov = None
        if self.config.supersample > 1:
            feats, g, cov = pool_gbuffer(feats, g, self.config.supersample)
        return feats, g, cov

    def render_features(self, feats: Tensor, g: GBuffer, cov: Tensor | None, code: Tensor | None = None,
                        camera_index: Tensor | None = None, with_residual: bool = False
                        ) -> Tensor | tuple[Tensor, Tensor]:
        """``render_gbuffer`` from ``pooled_features``' output: the U-Net and the colour correction."""
        rgba, res = self.renderer(feats, g, code, with_residual=True, coverage=cov)
        A, b = self.color_correction(camera_index)
        rgb = torch.einsum("bij,bhwj->bhwi", A.expand(len(rgba), 3, 3), rgba[..., :3]) + b[:, None, None]
        rgba = filter_rgba(torch.cat([rgb, rgba[..., 3:]], -1), self.config.output_filter)
        return (rgba, res) if with_residual else rgba

    def forward(self, verts: Tensor, cameras: Camera, code: Tensor | None = None) -> Tensor:
        """Render verts (V, 3) or (B, V, 3) world metres in B cameras: (B, H, W, 4) RGBA, sRGB, straight alpha."""
        return self.render_gbuffer(self.gbuffer(verts, cameras), code)


def pool_gbuffer(features: Tensor, g: GBuffer, s: int) -> tuple[Tensor, GBuffer, Tensor]:
    """Average s x s blocks of a supersampled G-buffer: features (B, sH, sW, C) and g (B, sH, sW) ->
    (features (B, H, W, C), G-buffer (B, H, W), coverage (B, H, W) in [0, 1]). Features, uv, normals and depth
    are means over the block's covered samples (normals renormalised), the view direction over all samples;
    the mask is "any sample covered". sH, sW must be multiples of s."""
    def pool(x: Tensor) -> Tensor:
        return tf.avg_pool2d(x.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)

    m = g.mask.to(features.dtype)[..., None]
    cov = pool(m)
    inv = 1.0 / cov.clamp_min(1e-6)
    feats = pool(features * m) * inv
    uv, depth = pool(g.uv.to(m.dtype) * m) * inv, pool(torch.where(g.mask, g.depth, 0)[..., None].to(m.dtype)) * inv
    normal = tf.normalize(pool(g.normal.to(m.dtype) * m), dim=-1)
    normal_cam = tf.normalize(pool(g.normal_cam.to(m.dtype) * m), dim=-1)
    view_dir = tf.normalize(pool(g.view_dir.to(m.dtype)), dim=-1)
    mask = cov[..., 0] > 0
    depth = torch.where(mask, depth[..., 0], torch.full_like(depth[..., 0], math.inf))
    return feats, GBuffer(mask, uv, normal, normal_cam, view_dir, depth), cov[..., 0]


def _meta(model: NeuralDouble, extra: dict | None) -> dict:
    return {"schema_version": MODEL_SCHEMA_VERSION, "config": asdict(model.config), "signature": model.signature(),
            "num_vertices": model.num_vertices, "frames": int(model.fitted_verts.shape[0]), **dict(extra or {})}


def save_model(directory: str | Path, model: NeuralDouble, extra: dict | None = None,
               optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write DIR/model.safetensors and DIR/config.json (atomic each). extra: JSON-able training state merged into
    config.json. optimizer: its Adam moments are saved too (``opt.*`` tensors) so training can resume."""
    from safetensors.torch import save

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    steps = {}
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                st = optimizer.state.get(p, {})
                for k in ("exp_avg", "exp_avg_sq"):
                    if k in st:
                        tensors[f"opt.{names[id(p)]}.{k}"] = st[k].detach().cpu().contiguous()
                if "step" in st:
                    steps[names[id(p)]] = float(st["step"])
    with atomic_open(d / MODEL_FILE, "wb") as f:
        f.write(save(tensors))
    atomic_write_json(d / CONFIG_FILE, {**_meta(model, extra), "optimizer_steps": steps})
    return d


def read_model_config(directory: str | Path) -> dict:
    """config.json of a model folder (ModelError naming the file when missing or malformed)."""
    d = Path(directory)
    p = d / CONFIG_FILE
    if not p.is_file() or not (d / MODEL_FILE).is_file():
        raise ModelError(f"{d}: not a neural double model folder (needs {MODEL_FILE} and {CONFIG_FILE})")
    try:
        meta = json.loads(p.read_text())
        NeuralDoubleConfig(**meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{p}: malformed model config ({e})") from None
    if meta.get("schema_version") != MODEL_SCHEMA_VERSION:
        raise ModelError(f"{p}: schema version {meta.get('schema_version')}, this Doppel reads {MODEL_SCHEMA_VERSION}")
    return meta


def load_model(directory: str | Path, device: str | torch.device = "cpu",
               optimizer_for: bool = False) -> tuple[NeuralDouble, dict, dict[str, Tensor]]:
    """(model on ``device``, config.json dict, optimizer tensors ``opt.*`` (empty unless optimizer_for))."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    meta = read_model_config(d)
    try:
        tensors = load_file(str(d / MODEL_FILE))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{d / MODEL_FILE}: unreadable ({e})") from None
    cfg = NeuralDoubleConfig(**meta["config"])
    need = ("faces", "uvs", "face_uvs", "fitted_verts", "cgi_texture")
    missing = [k for k in need if k not in tensors]
    if missing:
        raise ModelError(f"{d / MODEL_FILE}: missing tensors {missing}")
    model = NeuralDouble(cfg, tensors["faces"], tensors["uvs"], tensors["face_uvs"], tensors["fitted_verts"],
                         tensors["cgi_texture"])
    state = {k: v for k, v in tensors.items() if not k.startswith("opt.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{d / MODEL_FILE}: does not match its config ({str(e).splitlines()[0]})") from None
    if model.signature() != meta.get("signature"):
        raise ModelError(f"{d}: the mesh buffers do not match the signature in {CONFIG_FILE}")
    opt = {k: v for k, v in tensors.items() if k.startswith("opt.")} if optimizer_for else {}
    return model.to(device), meta, opt
