"""The double's head drawn by its trained neural double (`doppel render train`) instead of the textured rig.

The neural double is bound to the fit's topology and UV layout, the rig (`doppel rig` of the same fit) to the same
ones: the rig gives the face landmarks and expression blendshapes the tracker solves with, the neural double gives
the appearance. Per frame the rig's bind mesh with the frame's expression on the head is drawn in the plate
camera placed by the head pose; only the head is kept (the rig's head region, rasterized for its coverage).

A neural double learned its appearance from training images `--size` px on their longer side (256 by default), in
which a face is smaller still: its head is drawn at most 512 px a side, or its training size (`trained_px`) if
larger (`double.FaceDouble.max_px`, `render_head`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class NeuralHead:
    """model: a `neural_render.NeuralDouble` or `NeuralEnsemble` (CPU, eval); bind (V, 3) float32 metres: the
    rig's bind mesh in the model's topology (the head's vertices are replaced per frame); source: the model folder;
    trained_px: the longest side of its training images (config.json's training summary; 0 when not recorded)."""

    model: object
    bind: np.ndarray
    source: Path
    trained_px: int = 0


def is_model_dir(path: str | Path) -> bool:
    """True when ``path`` is a neural double's model folder (`doppel render train`'s output)."""
    from neural_render.neural_double import CONFIG_FILE, MODEL_FILE

    p = Path(path)
    return (p / MODEL_FILE).is_file() and (p / CONFIG_FILE).is_file()


def load_neural_head(model_dir: str | Path, rig) -> NeuralHead:
    """The neural double in ``model_dir`` bound to ``rig`` (a `rigging.Rig`). ModelError (one line) when the model
    was trained on another topology or UV layout than the rig's, or the folder is not a model."""
    from neural_render.ensemble import load_double
    from neural_render.neural_double import ModelError, topology_signature

    model, meta = load_double(model_dir, "cpu")
    if rig.uvs is None or rig.face_uvs is None:
        raise ModelError(f"the rig has no UV layout: the neural double in {model_dir} cannot draw it")
    if topology_signature(rig.faces, rig.uvs, rig.face_uvs, rig.num_vertices) != model.signature():
        raise ModelError(f"{model_dir}: the neural double was trained on another topology / UV layout than the "
                         "rig (give the rig built from the same fit)")
    model.eval()
    return NeuralHead(model, np.asarray(rig.vertices, np.float32), Path(model_dir), _trained_px(meta))


def _trained_px(meta: dict) -> int:
    """The longest side in px of the training images in a model's config.json dict (its training summary);
    0 when not recorded."""
    try:
        return max(int(x) for x in (meta.get("summary") or {}).get("size") or [0])
    except (TypeError, ValueError, AttributeError):
        return 0


def render_neural_head(head: NeuralHead, head_vertices: np.ndarray, head_verts: np.ndarray, R: np.ndarray,
                       t: np.ndarray, K: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w, 3) float32 sRGB of the neural double in the crop box (x0, y0, x1, y1) of the plate camera K, head
    pose R (3, 3), t (3,) (bind frame -> camera), with the head's vertices ``head_vertices`` (Vh,) moved to
    ``head_verts`` (Vh, 3) metres (the frame's expression). The crop is rendered at the U-Net's size multiple
    (padded right and down) and cut back to the box; its G-buffer is built in strips
    (`neural_render.strip_render`), so a 4K plate's face box does not allocate gigabytes a frame."""
    import torch

    from doppel.face_swap.crop import crop_camera
    from neural_render.strip_render import render_in_strips

    x0, y0, x1, y1 = box
    w, h = x1 - x0 + 1, y1 - y0 + 1
    m = head.model.renderer.multiple
    cam = crop_camera(K, R, t, box, size=(-(-w // m) * m, -(-h // m) * m))
    verts = head.bind.copy()
    verts[head_vertices] = head_verts
    code_dim = int(getattr(head.model.config, "code_dim", 0) or 0)
    device = next(head.model.parameters()).device          # the model draws where it is (`swap_plate`'s device)
    code = torch.zeros(1, code_dim, device=device) if code_dim else None
    with torch.no_grad():
        rgba = render_in_strips(head.model, torch.from_numpy(verts).to(device), cam.to(device=device), code)
    rgba = rgba[0].float().cpu().numpy()
    return np.clip(rgba[:h, :w, :3], 0, 1).astype(np.float32)
