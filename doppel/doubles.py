"""A double's assets as the CLI and the demo build them: the default rig of a body model, the function
that poses a rig for previews, the retarget target of a rig folder or BVH, and a rig's albedo texture.

Library code behind `doppel rig`, `doppel retarget`, `doppel export` and the demo stages (the commands stay
thin): every check of user input here names the option it came from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODELS = ("anny", "smplx", "flame")
MIN_PREVIEW_SIZE = 64       # px, height of a preview panel
MAX_PREVIEW_SIZE = 4096     # px: a panel is size x size, and a preview holds a few (memory grows with size^2)


def check_preview_size(size: int, option: str = "--preview-size") -> int:
    """size if MIN_PREVIEW_SIZE <= size <= MAX_PREVIEW_SIZE, else ValueError naming the option."""
    if not MIN_PREVIEW_SIZE <= size <= MAX_PREVIEW_SIZE:
        raise ValueError(f"{option} must be between {MIN_PREVIEW_SIZE} and {MAX_PREVIEW_SIZE} pixels, got {size}")
    return size


def parse_assignments(items: list[str], what: str) -> dict[str, float]:
    """["age=0.4", "height=0.7"] -> {"age": 0.4, "height": 0.7}; ValueError naming the bad item (not KEY=VALUE,
    not a number, not finite)."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{what}: {key.strip()!r} needs a number, got {value!r}") from None
        if not math.isfinite(out[key.strip()]):
            raise ValueError(f"{what}: {key.strip()!r} must be a finite number, got {value!r}")
    return out


def check_shape(body, shape: Mapping[str, float], option: str = "--phenotype") -> None:
    """Names known to the body model, values finite and inside its shape_bounds (Anny: [0, 1]); ValueError
    naming the option, the name and the range."""
    unknown = sorted(set(shape) - set(body.shape_names))
    if unknown:
        raise ValueError(f"{option}: unknown name(s) {unknown} for {body.name}; known: {', '.join(body.shape_names)}")
    lo, hi = body.shape_bounds if body.shape_bounds is not None else (-math.inf, math.inf)
    for k, v in shape.items():
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"{option} {k}={v:g}: out of range; {body.name}'s shape values lie in [{lo:g}, {hi:g}]")


def build_default_rig(model: str = "anny", phenotype: dict[str, float] | None = None, seed: int = 0,
                      anny_rig: str = "default", model_file: Path | None = None, top_k: int | None = None):
    """(rig, params, inputs): the rig of a double with a seeded default shape. Anny: the virtual actor's seeded
    phenotype, overridden by ``phenotype``; SMPL-X / FLAME: seeded betas (N(0, 0.5)), overridden too.
    params: what the manifest records; inputs: name -> input file hashed into the manifest."""
    from rigging import Rig

    phenotype = dict(phenotype or {})
    inputs: dict[str, Path] = {}
    if model == "anny":
        from doppel.virtual_actor import sample_parameters
        from reconstruction.body_models import AnnyModel

        body = AnnyModel(rig=anny_rig)
        check_shape(body, phenotype)
        shape = {**sample_parameters(seed)[0], **phenotype}
    elif model in ("smplx", "flame"):
        from reconstruction.body_models import FLAMEModel, SMPLXModel

        body = (SMPLXModel if model == "smplx" else FLAMEModel)(model_file)
        check_shape(body, phenotype)
        inputs["model_file"] = body.path
        rng = np.random.default_rng(seed)
        shape = {**{n: round(float(x), 6) for n, x in zip(body.shape_names, rng.normal(0, 0.5, len(body.shape_names)),
                                                          strict=True)}, **phenotype}
    else:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    rig = Rig.from_body_model(body, shape, top_k=top_k).validate()
    params = {"model": model, "anny_rig": anny_rig if model == "anny" else None, "seed": seed,
              "shape": {k: round(float(v), 6) for k, v in shape.items()}, "top_k": top_k}
    rig.metadata = {**rig.metadata, **params}
    return rig, params, inputs


def fitted_model_file(fit_dir: Path) -> Path | None:
    """The SMPL-X / FLAME model file a `doppel fit` folder was fitted with (its manifest's ``model_file``), when
    that file is still there; None otherwise (Anny fits, older fits, a moved file)."""
    import json

    try:
        params = json.loads((Path(fit_dir) / "manifest.json").read_text()).get("params", {})
    except (OSError, ValueError):
        return None
    path = params.get("model_file") if isinstance(params, dict) else None
    return Path(path) if path and Path(path).is_file() else None


def flame_embedding_for(model: str, inputs: dict[str, Path]) -> Path | None:
    """FLAME's MediaPipe landmark embedding to keep with a FLAME rig (face replacement tracks with it): beside the
    model file (``inputs["model_file"]``), else in $DOPPEL_MODELS_DIR/flame/; None for another model or when
    there is none (the rig is still made; `doppel swap` then says where to put it)."""
    from reconstruction.fitting.landmarks import flame_embedding_places

    if model != "flame":
        return None
    places = flame_embedding_places([Path(inputs["model_file"]).parent] if "model_file" in inputs else [])
    return next((p for p in places if p.is_file()), None)


def smplx_face_embedding_for(model: str, num_vertices: int, inputs: dict[str, Path]) -> dict | None:
    """FLAME's MediaPipe embedding carried onto SMPL-X (`reconstruction.fitting.smplx_face`) to keep with an SMPL-X
    rig, made from the downloads beside the model file or in $DOPPEL_MODELS_DIR; None for another model or when
    a download is missing (`doppel swap` then places the face points by the eyes)."""
    from reconstruction.fitting.smplx_face import find_smplx_face_embedding

    if model != "smplx":
        return None
    return find_smplx_face_embedding(num_vertices, model_file=inputs.get("model_file"))


def rig_poser(r) -> Callable:
    """For a rigging.Rig: anim -> (frame indices (n,) -> posed vertices (n, V, 3) float32 through Rig.pose), the
    animation's joints matched to the rig's by name and its blendshape weights applied. The animation is checked
    against the rig when the poser is made (AnimationError); each call takes its own frames in the rig's order (a
    long take is not copied whole for a few preview frames)."""
    def make(anim):
        import torch

        from rigging.animation import in_rig_order

        anim.validate()                                  # once, the whole take; then the rig's names
        in_rig_order(anim, r, np.zeros(1, np.int64))

        def f(frames):
            R, t, w = in_rig_order(anim, r, np.asarray(frames))
            with torch.no_grad():
                v = r.pose(torch.as_tensor(R, dtype=torch.float32), torch.as_tensor(t, dtype=torch.float32),
                           None if w is None else torch.as_tensor(w, dtype=torch.float32))
            return v.cpu().numpy()
        return f
    return make


def load_target(rig: Path):
    """(TargetSkeleton, pose_vertices factory or None, faces or None) for a rig folder (rig.npz +
    manifest.json) or, for BVH-to-BVH retargeting, a .bvh file whose rest pose is the target."""
    from mocap_retarget.bvh import read_bvh
    from mocap_retarget.skeleton import TargetSkeleton
    from rigging import Rig

    rig = Path(rig)
    if rig.is_file() and rig.suffix.lower() == ".bvh":
        return TargetSkeleton.from_motion(read_bvh(rig)), None, None
    if not rig.exists():
        raise FileNotFoundError(f"{rig}: rig folder not found")
    r = Rig.load(rig)
    return TargetSkeleton.from_rig(r), rig_poser(r), np.asarray(r.faces)


def albedo_for_rig(rig, rig_dir: Path, work_dir: Path, size: int = 1024, seed: int = 0) -> Path | None:
    """The rig's albedo texture: RIG_DIR/albedo.png when there is one, else Doppel's procedural albedo painted on
    the rig's UVs (Anny's UV layout: not for SMPL-X / FLAME rigs) into ``work_dir``; None when neither is possible
    (logged)."""
    own = rig_dir / "albedo.png"
    if own.is_file():
        return own
    if rig.uvs is None:
        log.warning("%s: the rig has no UVs; exporting without a texture", rig_dir)
        return None
    from core.meshio import write_png
    from doppel.albedo import REGIONS, face_regions, paint_albedo
    from doppel.face_swap.face_basis import rig_model

    if rig_model(rig) not in (None, "anny"):        # SMPL-X's / FLAME's own UV layouts: not Anny's regions
        log.warning("%s: no albedo.png, and the procedural albedo needs Anny's UV layout (this is a %s rig); "
                    "exporting without a texture (give --texture)", rig_dir, rig_model(rig))
        return None
    regions = face_regions(rig.uvs, rig.face_uvs)
    needed = [REGIONS[k] for k in ("head", "eye_front.L", "eye_front.R", "mouth_cavity")]
    if not all((regions == r).any() for r in needed):
        log.warning("%s: no albedo.png, and the procedural albedo needs Anny's UV layout; exporting without a "
                    "texture (give --texture)", rig_dir)
        return None
    path = work_dir / "albedo.png"
    write_png(path, paint_albedo(rig.vertices, rig.faces, rig.uvs, rig.face_uvs, regions, seed, size))
    return path
