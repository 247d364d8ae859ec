"""Image files of renders: linear half-float RGBA OpenEXR (for compositing) beside sRGB PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.storage import atomic_open

__all__ = ["write_exr", "read_exr"]


def write_exr(path: str | Path, image: np.ndarray, half: bool = True,
              extra: dict[str, np.ndarray] | None = None, attributes: dict | None = None) -> Path:
    """image (H, W, 3|4) float, linear (RGBA: premultiplied alpha, the OpenEXR convention) -> OpenEXR file,
    half float (or float32 when ``half`` is False), ZIP compression. extra: more channels, name -> (H, W),
    written as float32 (render passes: ``neural_render.aovs``); attributes: header attributes as the OpenEXR
    module takes them (strings: a Cryptomatte layer's, `neural_render.cryptomatte.crypto_header`; a Fraction: a
    rational such as framesPerSecond; a float: e.g. expTime). Atomic."""
    import OpenEXR

    a = np.asarray(image, dtype=np.float16 if half else np.float32)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"write_exr {path}: image must be (H, W, 3) or (H, W, 4), got {a.shape}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **(attributes or {})}
    channels = {"RGBA" if a.shape[2] == 4 else "RGB": np.ascontiguousarray(a)}
    for name, x in (extra or {}).items():
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != a.shape[:2] or name in ("R", "G", "B", "A"):
            raise ValueError(f"write_exr {path}: channel {name!r} must be {a.shape[:2]} and not R, G, B or A, "
                             f"got {x.shape}")
        channels[name] = x
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.exr")
    try:
        with OpenEXR.File(header, channels) as f:
            f.write(str(tmp))
        with atomic_open(path, "wb") as out:
            out.write(tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_exr(path: str | Path) -> np.ndarray:
    """An OpenEXR file -> (H, W, C) float32 (RGB or RGBA)."""
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        key = "RGBA" if "RGBA" in ch else "RGB" if "RGB" in ch else next(iter(ch))
        return np.asarray(ch[key].pixels, dtype=np.float32)
