"""A fit folder (the output of `doppel fit`, scan or multi-view): written and read in one place.

Layout:
    params.json          model, source ("scan" / "multiview"), shape (name -> value), pose (J, 3) axis-angle with
                         pose_names, root_translation (3,) metres, expression (name -> weight)
    fit_mesh.ply         the fitted mesh (posed, world frame), detail included when there is detail
    fit_mesh_bind.ply    the model's bind mesh for the fitted shape
    model_fit_mesh.ply   the model alone (posed), only with detail
    displacements.npz    only with detail: offsets (V, 3) float32 metres (fit_mesh - model_fit_mesh); normal (V,)
                         their components along the model's vertex normals (as measured); normal_regularised (V,)
                         the normal components smoothed over the mesh and filled in where nothing was observed
                         (reconstruction.detail.solve_displacements); observed (V,) 1 where the data reached
    metrics.json         numbers of the fit
    uv_layout.npz        SMPL-X / FLAME fits whose model has a UV layout (`body_models.uv_layouts`): uvs (T, 2)
                         float32 v up, face_uvs (F, 3) int64, so the texture, rig and neural double of the fit need
                         neither the model file nor its UV download later (Anny's layout is built in)
    manifest.json        the stage manifest (stage "fit")
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.fileio import read_json_object
from core.meshio import write_ply
from core.storage import atomic_write_bytes, atomic_write_json, write_manifest

FIT_STAGE = "fit"
UV_LAYOUT_FILE = "uv_layout.npz"


@dataclass(frozen=True)
class Detail:
    """Per-vertex detail on top of a model fit (see the module doc for the fields)."""

    offsets: np.ndarray              # (V, 3) metres
    normal: np.ndarray               # (V,) metres
    normal_regularised: np.ndarray   # (V,) metres
    observed: np.ndarray             # (V,) 0/1

    @classmethod
    def from_offsets(cls, faces: np.ndarray, offsets: np.ndarray, normals: np.ndarray, observed: np.ndarray
                     ) -> Detail:
        """offsets (V, 3), vertex normals (V, 3) of the model fit, observed (V,) -> Detail, the regularised
        normal components solved over the mesh."""
        from reconstruction.detail import solve_displacements

        normal = (offsets * normals).sum(1)
        obs = np.asarray(observed, dtype=np.float64)
        return cls(offsets=offsets, normal=normal,
                   normal_regularised=solve_displacements(faces, len(normal), normal, obs), observed=obs)


@dataclass(frozen=True)
class FitParams:
    """params.json of a fit folder."""

    model: str
    source: str
    shape: dict[str, float]
    pose: np.ndarray | None              # (J, 3) axis-angle, or None when the file has none
    pose_names: list[str]
    root_translation: np.ndarray | None  # (3,) metres
    expression: dict[str, float]


class FitFolder:
    """Read and write the fit folder at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, model, *, source: str, shape: np.ndarray, pose: np.ndarray, root_translation: np.ndarray,
              expression: np.ndarray | None, model_vertices: np.ndarray, detail: Detail | None, metrics: dict,
              params: dict[str, Any], inputs: dict[str, Path] | None = None,
              extra_outputs: dict[str, str] | None = None) -> Path:
        """Write every file of the layout. model: the BodyModel fitted; shape (S,), pose (J, 3), root_translation
        (3,), expression (E,) or None (zeros); model_vertices (V, 3) the posed model fit; detail: None or the
        detail on top of it; metrics -> metrics.json; params, inputs -> the manifest; extra_outputs: more files the
        caller wrote into the folder (name -> file name), listed in the manifest."""
        out = self.path
        out.mkdir(parents=True, exist_ok=True)
        faces = np.asarray(model.faces)
        outputs = {"params": "params.json", "fit_mesh": "fit_mesh.ply", "fit_mesh_bind": "fit_mesh_bind.ply",
                   "metrics": "metrics.json"}
        if detail is None:
            write_ply(out / "fit_mesh.ply", model_vertices, faces)
        else:
            write_ply(out / "fit_mesh.ply", model_vertices + detail.offsets, faces)
            write_ply(out / "model_fit_mesh.ply", model_vertices, faces)
            buf = io.BytesIO()
            np.savez_compressed(buf, offsets=detail.offsets.astype(np.float32), normal=detail.normal.astype(np.float32),
                                normal_regularised=detail.normal_regularised.astype(np.float32),
                                observed=detail.observed.astype(np.float32))
            atomic_write_bytes(out / "displacements.npz", buf.getvalue())
            outputs.update(model_fit_mesh="model_fit_mesh.ply", displacements="displacements.npz")
        outputs.update(extra_outputs or {})
        layout = model.uvs if model.name != "anny" else None
        if layout is not None:
            buf = io.BytesIO()
            np.savez(buf, uvs=layout[0], face_uvs=layout[1])
            atomic_write_bytes(out / UV_LAYOUT_FILE, buf.getvalue())
            outputs["uv_layout"] = UV_LAYOUT_FILE
        write_ply(out / "fit_mesh_bind.ply", model.bind_state(shape).vertices, faces)
        expr = np.zeros(len(model.expression_names)) if expression is None else expression
        atomic_write_json(out / "params.json", {
            "model": model.name, "source": source,
            "shape": {n: float(x) for n, x in zip(model.shape_names, shape, strict=True)},
            "pose": np.asarray(pose).tolist(), "pose_names": list(model.pose_names),
            "root_translation": np.asarray(root_translation).tolist(),
            "expression": {n: float(x) for n, x in zip(model.expression_names, expr, strict=True)}})
        atomic_write_json(out / "metrics.json", metrics)
        write_manifest(out, FIT_STAGE, inputs=inputs, params=params, outputs=outputs)
        return out

    def read_params(self) -> FitParams:
        """params.json (FileNotFoundError / ValueError naming the file and the field)."""
        p = self.path / "params.json"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: not found; is {self.path} a `doppel fit` output folder?")
        data = read_json_object(p, "fit parameters")
        for key in ("model", "shape"):
            if key not in data:
                raise ValueError(f"{p}: field {key!r} is missing")
        shape = data["shape"]
        if not isinstance(shape, dict) or \
                not all(isinstance(v, int | float) and np.isfinite(v) for v in shape.values()):
            raise ValueError(f"{p}: 'shape' must be an object of finite numbers")
        pose = data.get("pose")
        return FitParams(model=str(data["model"]), source=str(data.get("source", "")),
                         shape={str(k): float(v) for k, v in shape.items()},
                         pose=None if pose is None else np.asarray(pose, dtype=np.float64),
                         pose_names=list(data.get("pose_names", [])),
                         root_translation=None if data.get("root_translation") is None else
                         np.asarray(data["root_translation"], dtype=np.float64),
                         expression={str(k): float(v) for k, v in dict(data.get("expression", {})).items()})
