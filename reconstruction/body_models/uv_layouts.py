"""The UV layout of an SMPL-X or FLAME model, from the files the user downloads with it.

Neither model's main file is guaranteed to carry texture coordinates: SMPL-X ``.npz`` files usually hold ``vt`` /
``ft``, SMPL-X's UV download is ``smplx_uv.obj``, and FLAME's texture space comes separately as
``FLAME_texture.npz`` (``vt``, ``ft``, ``mean``, ``tex_dir``) or as the template mesh ``head_template_mesh.obj``
(``head_template.obj`` in DECA's data). They are looked for in the model file's own arrays, then beside the model
file, then in ``$DOPPEL_MODELS_DIR/<smplx|flame>/``. A layout found is checked against the model's triangles
(ModelFileError naming the file when it is for another topology); no file anywhere is not an error (None).

Layouts are (uvs (T, 2) float32 in [0, 1], v up as in OBJ and everywhere in Doppel, face_uvs (F, 3) int64):
triangle i's corners take uvs[face_uvs[i]].
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from reconstruction.body_models.base import ModelFileError, models_dir

UV_FILES = {"smplx": ("smplx_uv.obj",),
            "flame": ("FLAME_texture.npz", "head_template_mesh.obj", "head_template.obj")}

__all__ = ["UV_FILES", "read_uv_file", "uv_layout_places", "find_uv_layout", "check_uv_layout"]


def _read_obj_uvs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uvs (T, 2), face_uvs (F, 3), faces (F, 3)) of a triangle OBJ whose faces name their texture vertices."""
    vt, fv, ft = [], [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            try:
                if line.startswith("vt "):
                    vt.append([float(x) for x in line.split()[1:3]][:2])
                    if len(vt[-1]) != 2:
                        raise ValueError("two coordinates expected")
                elif line.startswith("f "):
                    corners = [c.split("/") for c in line.split()[1:]]
                    if len(corners) != 3 or any(len(c) < 2 or not c[1] for c in corners):
                        raise ValueError("expected a triangle with texture indices (f v/vt ...)")
                    fv.append([int(c[0]) for c in corners])
                    ft.append([int(c[1]) for c in corners])
            except ValueError as e:
                raise ModelFileError(f"{path}:{n}: {e}: {line.strip()[:80]!r}") from None
    if not vt or not ft:
        raise ModelFileError(f"{path}: no texture coordinates (vt) or faces (f) in the file")
    fv_a, ft_a = np.asarray(fv, np.int64), np.asarray(ft, np.int64)
    if (fv_a < 0).any() or (ft_a < 0).any():
        raise ModelFileError(f"{path}: negative (relative) OBJ indices are not supported")
    return np.asarray(vt, np.float32), ft_a - 1, fv_a - 1


def read_uv_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(uvs (T, 2) float32, face_uvs (F, 3) int64, the file's own triangles (F, 3) or None) of a UV file: an OBJ
    (``vt`` lines and ``f v/vt`` triangles) or an ``.npz`` with ``vt`` and ``ft`` (FLAME_texture.npz; read without
    unpickling). ModelFileError when it is neither."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        return _read_obj_uvs(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "vt" not in z.files or "ft" not in z.files:
                raise ModelFileError(f"{path}: no 'vt' / 'ft' arrays (has {sorted(z.files)[:8]})")
            return np.asarray(z["vt"], np.float32)[:, :2], np.asarray(z["ft"], np.int64), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from e


def check_uv_layout(uvs: np.ndarray, face_uvs: np.ndarray, faces: np.ndarray, source: str,
                    file_faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The layout as (uvs (T, 2) float32, face_uvs (F, 3) int64) when it fits ``faces`` (F, 3); ModelFileError
    naming ``source`` otherwise (another topology, indices out of range, non-finite coordinates)."""
    uvs, face_uvs = np.asarray(uvs, np.float32), np.asarray(face_uvs, np.int64)
    if uvs.ndim != 2 or uvs.shape[1] < 2 or face_uvs.shape != np.shape(faces):
        raise ModelFileError(f"{source}: {face_uvs.shape} texture triangles / {uvs.shape} coordinates are not a "
                             f"UV layout of the model's {len(faces)} triangles (another model or version?)")
    if file_faces is not None and not np.array_equal(file_faces, faces):
        raise ModelFileError(f"{source}: its triangles are not the model's (same count, other vertices): a mesh "
                             f"of another topology")
    if face_uvs.min() < 0 or face_uvs.max() >= len(uvs) or not np.isfinite(uvs).all():
        raise ModelFileError(f"{source}: texture indices outside [0, {len(uvs)}) or non-finite coordinates")
    return np.ascontiguousarray(uvs[:, :2]), face_uvs


def uv_layout_places(model: str, model_file: str | os.PathLike | None) -> list[Path]:
    """Where a UV file of ``model`` ("smplx" / "flame") is looked for, in order: beside the model file, then in
    $DOPPEL_MODELS_DIR/<model>/."""
    folders = [Path(model_file).parent] if model_file is not None else []
    if models_dir(model) is not None:
        folders.append(models_dir(model))
    seen, out = set(), []
    for folder in folders:
        for name in UV_FILES.get(model, ()):
            p = folder / name
            if p.resolve() not in seen:
                seen.add(p.resolve())
                out.append(p)
    return out


def find_uv_layout(model: str, model_file: str | os.PathLike | None, faces: np.ndarray,
                   arrays: dict | None = None) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(uvs (T, 2), face_uvs (F, 3), where they came from) of ``model``'s triangles ``faces`` (F, 3): the model
    file's own ``vt`` / ``ft`` (``arrays``), else the first UV file of `uv_layout_places`; None when there is none.
    ModelFileError when the one found does not fit the triangles (it is not skipped for the next: a wrong file
    in the models folder should be fixed, not shadowed)."""
    if arrays is not None and "vt" in arrays and "ft" in arrays:
        src = f"{model_file} (vt / ft)"
        uvs, face_uvs = check_uv_layout(np.asarray(arrays["vt"])[:, :2], arrays["ft"], faces, src)
        return uvs, face_uvs, src
    for p in uv_layout_places(model, model_file):
        if p.is_file():
            uvs, face_uvs, file_faces = read_uv_file(p)
            uvs, face_uvs = check_uv_layout(uvs, face_uvs, faces, str(p), file_faces)
            return uvs, face_uvs, str(p)
    return None
