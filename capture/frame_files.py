"""The frames of a folder plate (or a one-image plate) as files: read as 8-bit display RGB for the swap, written
back so that whatever the swap did not change keeps the file's own values.

VFX plates come as frame sequences, often at more than 8 bits: 16-bit PNG or TIFF, 10-bit DPX
(`capture.dpx_frames`), or scene-linear OpenEXR (half or float, with alpha and other channels). Tracking,
segmentation and the comp work on 8-bit display RGB (`read_frame`): by default an EXR's linear RGB through the
sRGB transfer function, clipped to [0, 1], and other files' code values rounded to 8 bits; with a ``colorspace``
(an OCIO colour space: a camera's log encoding, ACEScg, ...) the file's values are converted from it into the
swap's sRGB view by OpenColorIO (`capture.plate_colour`). `write_frame` writes a frame back in its source's
format: a frame the swap left as it was is the source file, copied byte for byte; otherwise only the pixels whose
display value changed take the new value (converted back: x 257 for 16 bits, the inverse transfer function for
EXR, OCIO's inverse with a colour space), every other pixel, the alpha and any other channel keep the source's
values, and an EXR or DPX keeps its header (compression, channel types, timecode, attributes).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

EXR = ".exr"
DPX = ".dpx"


def frame_size(path: str | os.PathLike) -> tuple[int, int]:
    """(W, H) from the file's header, nothing decoded; ValueError (one line) for what cannot be a plate frame
    (an EXR that is multi-part, deep, without R, G and B, or whose data window is not its display window)."""
    from capture.images import check_image_size

    path = Path(path)
    if path.suffix.lower() == DPX:
        from capture.dpx_frames import dpx_spec

        spec = dpx_spec(path)
        return spec.width, spec.height
    if path.suffix.lower() != EXR:
        w, h = check_image_size(path)
        return (h, w) if exif_orientation(path) >= 5 else (w, h)       # shown turned a quarter: the sides swap
    return _exr_size(path, _read_exr(path, pixels=False)[1])


def _read_exr(path: Path, pixels: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """(each channel's samples by name (empty when not ``pixels``), the header), in one read of the file;
    ValueError (one line) for what cannot be a plate frame (`frame_size`)."""
    import OpenEXR

    if not path.is_file():
        raise FileNotFoundError(f"{path}: image does not exist")
    try:
        with OpenEXR.File(str(path), separate_channels=True, header_only=not pixels) as f:
            if len(f.parts) != 1:
                raise ValueError(f"{path}: a multi-part EXR ({len(f.parts)} parts): give single-part frames")
            header = dict(f.header())           # a copy: the file's own is emptied on close
            if "deep" in str(header.get("type", "")).lower():
                raise ValueError(f"{path}: a deep EXR: give flat frames")
            _exr_size(path, header)
            channels = {name: np.asarray(c.pixels) for name, c in f.channels().items()} if pixels else {}
    except (RuntimeError, OSError) as e:
        raise ValueError(f"{path}: EXR could not be read (corrupt or unsupported: {str(e)[:160]})") from None
    return channels, header


def exr_header(path: str | os.PathLike) -> dict:
    """An EXR frame's header (attributes by name), nothing decoded; `frame_size`'s checks."""
    return _read_exr(Path(path), pixels=False)[1]


def _exr_size(path: Path, header: dict) -> tuple[int, int]:
    """(W, H) of a plate frame's EXR header; ValueError when its data window is not its display window or it has
    no R, G and B."""
    (x0, y0), (x1, y1) = (np.asarray(v).tolist() for v in header["displayWindow"])
    data = tuple(np.asarray(v).tolist() for v in header["dataWindow"])
    if data != ([x0, y0], [x1, y1]):
        raise ValueError(f"{path}: EXR data window {data} is not its display window ({x0}, {y0})-({x1}, {y1}) "
                         "(overscan or a crop): give frames whose data fill the display window")
    names = {c.name for c in header["channels"]}
    if not {"R", "G", "B"} <= names:
        raise ValueError(f"{path}: EXR has no R, G and B channels (it has {', '.join(sorted(names))})")
    return x1 - x0 + 1, y1 - y0 + 1


def linear_to_display(linear: np.ndarray) -> np.ndarray:
    """Scene-linear RGB (any float) -> 8-bit display RGB: clipped to [0, 1], the sRGB transfer function."""
    x = np.clip(np.nan_to_num(np.asarray(linear, np.float32), nan=0.0), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8)


def display_to_linear(rgb: np.ndarray) -> np.ndarray:
    """8-bit display RGB -> linear float32 (the inverse of `linear_to_display` on [0, 1])."""
    s = np.asarray(rgb, np.float32) / 255.0
    return np.where(s <= 0.04045, s / 12.92, np.power((s + 0.055) / 1.055, 2.4)).astype(np.float32)


def read_frame(path: str | os.PathLike, colorspace: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 display RGB of a frame file (any bit depth; EXR through `linear_to_display`). colorspace:
    the OCIO colour space the file's values are in (None: as described in the module docstring)."""
    path = Path(path)
    if path.suffix.lower() == EXR:
        channels = _read_exr(path)[0]
        return _exr_display(np.stack([channels[c] for c in "RGB"], -1), colorspace)
    return _display_of(_read_unchanged(path)[0], colorspace)


def _exr_display(linear: np.ndarray, colorspace: str | None) -> np.ndarray:
    from capture.plate_colour import to_working

    return linear_to_display(linear) if colorspace is None else to_working(linear, colorspace)


def _read_unchanged(path: Path):
    """(the file's own samples, (H, W, 3|4) RGB(A), uint8 or uint16 (grey promoted to RGB); a DPX's header, the
    OpenImageIO ImageSpec its frame is written back under, else None)."""
    import cv2

    from capture.images import read_image

    if path.suffix.lower() == DPX:
        from capture.dpx_frames import read_dpx

        return read_dpx(path)
    img = read_image(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.dtype not in (np.uint8, np.uint16) or img.shape[2] not in (3, 4):
        raise ValueError(f"{path}: frame of {img.dtype} with {img.shape[2]} channels: expected 8- or 16-bit RGB(A)")
    return np.ascontiguousarray(_swap_red_blue(oriented(img, exif_orientation(path)))), None


def _swap_red_blue(img: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) BGR(A) <-> RGB(A) (OpenCV's order and ours), a view."""
    return img[..., [2, 1, 0, 3][:img.shape[2]]]


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation (1-8; 1 = shown as stored) of a PNG, JPEG or TIFF; 1 when it has none."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = int(im.getexif().get(0x0112, 1) or 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def oriented(img: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, ...) as stored -> as shown under EXIF ``orientation`` (what PIL's ``ImageOps.exif_transpose`` does,
    for any sample type: 16-bit too)."""
    swap = img.swapaxes(0, 1)
    return {2: img[:, ::-1], 3: img[::-1, ::-1], 4: img[::-1], 5: swap, 6: swap[:, ::-1], 7: swap[::-1, ::-1],
            8: swap[::-1]}.get(orientation, img)


def _display_of(img: np.ndarray, colorspace: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 display RGB of a file's (H, W, 3|4) RGB(A) samples (`_read_unchanged`)."""
    from capture.plate_colour import display_of_codes

    return np.ascontiguousarray(display_of_codes(img[..., :3], colorspace))


def write_frame(out: str | os.PathLike, rgb: np.ndarray, source: str | os.PathLike | None = None,
                colorspace: str | None = None, drawn: np.ndarray | None = None) -> None:
    """Write (H, W, 3) uint8 display RGB to ``out`` in its suffix's format. With ``source`` (a file of the same
    format and size): a frame equal to the source's display is the source, copied byte for byte; otherwise the
    source's samples where the display did not change, the new ones where it did (module docstring).
    colorspace: the OCIO colour space of the file's values (`read_frame`). drawn: ``rgb`` before a disclosure
    marked it (watermark, label): pixels only the marks changed keep the source's precision, moved by the marks'
    change (`capture.plate_colour.merged_codes`)."""
    import cv2
    import OpenEXR

    out = Path(out)
    if source is not None and Path(source).suffix.lower() == out.suffix.lower():
        _write_over_source(out, rgb, Path(source), colorspace, rgb if drawn is None else drawn)
        return
    if out.suffix.lower() == EXR:
        linear = _exr_values(rgb, colorspace)
        _write_exr(out, {c: linear[..., k].astype(np.float16) for k, c in enumerate("RGB")},
                   {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage})
        return
    if out.suffix.lower() == DPX:
        from capture.dpx_frames import write_dpx
        from capture.plate_colour import codes_of_display

        write_dpx(out, codes_of_display(rgb, np.uint16, colorspace))
        return
    _imwrite(out, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _imwrite(out: Path, samples: np.ndarray) -> None:
    """OpenCV-ordered samples (H, W, C) -> ``out`` in the format its suffix names: encoded in memory, then written
    by Python, so a failed write is an OSError with its errno (a full disk: ENOSPC), not imwrite's False."""
    import cv2

    ok, data = cv2.imencode(out.suffix, samples)
    if not ok:
        raise ValueError(f"{out}: OpenCV cannot encode a {samples.dtype} frame of shape {samples.shape} as "
                         f"{out.suffix}")
    with open(out, "wb") as f:
        f.write(data.tobytes())


def _exr_values(rgb: np.ndarray, colorspace: str | None) -> np.ndarray:
    """(..., 3) uint8 display RGB -> float32 EXR RGB: `_exr_display` inverted."""
    from capture.plate_colour import from_working

    return display_to_linear(rgb) if colorspace is None else from_working(rgb, colorspace)


def _write_over_source(out: Path, rgb: np.ndarray, source: Path, colorspace: str | None, drawn: np.ndarray) -> None:
    if source.suffix.lower() == EXR:
        channels, header = _read_exr(source)
        changed = np.any(_exr_display(np.stack([channels[c] for c in "RGB"], -1), colorspace) != rgb, axis=-1)
        if not changed.any():
            shutil.copyfile(source, out)
            return
        linear = _exr_values(rgb[changed], colorspace)
        for k, name in enumerate("RGB"):             # the changed samples, in each channel's own sample type
            channels[name] = channels[name].copy()
            channels[name][changed] = linear[:, k].astype(channels[name].dtype)
        _write_exr(out, channels, header)
        return
    from capture.plate_colour import merged_codes

    img, header = _read_unchanged(source)
    codes = img[..., :3]
    merged = merged_codes(codes, _display_of(img, colorspace), drawn, rgb, colorspace)
    if merged is codes:
        shutil.copyfile(source, out)
        return
    img[..., :3] = merged
    _write_samples(out, img, source, header)


def _write_samples(out: Path, img: np.ndarray, source: Path, header) -> None:
    """(H, W, 3|4) RGB(A) samples to ``out``, in the source's format with what of its header the format keeps
    (header: a DPX's, `_read_unchanged`)."""

    if source.suffix.lower() == DPX:
        from capture.dpx_frames import write_dpx

        write_dpx(out, img, header)
        return
    icc = _icc_profile(source)
    if icc and img.dtype == np.uint8:                      # the source's colour space goes with it (PIL: 8-bit)
        _write_with_profile(out, img, icc)
    else:
        _imwrite(out, np.ascontiguousarray(_swap_red_blue(img)))


def _icc_profile(path: Path) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.info.get("icc_profile") or None
    except (OSError, ValueError, SyntaxError):
        return None


def _write_with_profile(out: Path, rgb: np.ndarray, icc: bytes) -> None:
    """An 8-bit RGB(A) frame written by PIL with the ICC profile ``icc`` (OpenCV cannot embed one)."""
    from PIL import Image

    extra = {"quality": 95} if out.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, icc_profile=icc, **extra)


def _write_exr(out: Path, channels: dict[str, np.ndarray], header: dict) -> None:
    """An EXR of ``channels`` (name: (H, W) samples) under ``header`` (a source's: its channel list and chunk count
    follow the channels)."""
    import OpenEXR

    header = {k: v for k, v in header.items() if k not in ("channels", "chunkCount")}
    with OpenEXR.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}) as f:
        f.write(str(out))
