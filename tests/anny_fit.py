"""A posed Anny fit folder for tests: params.json as `doppel fit` writes it and fit_mesh.ply with detail."""

import json
from pathlib import Path

import numpy as np
import torch


def write_posed_anny_fit(fit: Path, model, pose: np.ndarray, shape: dict, root: np.ndarray, detail_m: float,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """FIT/params.json (model anny, shape, pose (J, 3) axis-angle, root translation (3,) metres) and FIT/fit_mesh.ply:
    the posed model plus normal noise of std ``detail_m`` metres (the fit's detail). Returns (posed vertices
    (V, 3), displacements (V, 3))."""
    import trimesh

    from reconstruction.body_models.base import BodyParams

    fit.mkdir(parents=True, exist_ok=True)
    (fit / "params.json").write_text(json.dumps({"model": "anny", "shape": shape, "pose": pose.tolist(),
                                                 "pose_names": model.skeleton.joint_names,
                                                 "root_translation": root.tolist(), "expression": {}}))
    with torch.no_grad():
        out = model(BodyParams(shape=torch.from_numpy(model.shape_vector(shape))[None],
                               pose=torch.from_numpy(pose)[None], root_translation=torch.from_numpy(root)[None]))
    v0 = out.vertices[0].numpy()
    disp = rng.normal(0, detail_m, v0.shape)
    trimesh.Trimesh(v0 + disp, model.faces, process=False).export(fit / "fit_mesh.ply")
    return v0, disp
