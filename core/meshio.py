"""Mesh and image files for stage outputs (atomic writes)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from core.storage import atomic_write_bytes, atomic_write_text


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """vertices (V, 3) float metres, faces (F, 3) int -> binary little-endian PLY at ``path``."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(faces), process=False)
    return atomic_write_bytes(path, mesh.export(file_type="ply", encoding="binary"))


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
              texture_name: str | None = None) -> Path:
    """Textured OBJ (+ .mtl naming ``texture_name`` when given). vertices (V, 3), faces (F, 3),
    uvs (T, 2) v up, face_uvs (F, 3)."""
    path = Path(path)
    buf = io.StringIO()
    if texture_name:
        mtl = path.with_suffix(".mtl")
        atomic_write_text(mtl, f"newmtl skin\nKd 1 1 1\nmap_Kd {texture_name}\n")
        buf.write(f"mtllib {mtl.name}\nusemtl skin\n")
    np.savetxt(buf, vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, uvs, fmt="vt %.6f %.6f")
    idx = np.stack([faces + 1, face_uvs + 1], axis=-1).reshape(len(faces), 6)
    np.savetxt(buf, idx, fmt="f %d/%d %d/%d %d/%d")
    return atomic_write_text(path, buf.getvalue())


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """image (H, W, 3|4) float in [0, 1] (or uint8) -> PNG at ``path``."""
    from PIL import Image

    arr = image if image.dtype == np.uint8 else (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
