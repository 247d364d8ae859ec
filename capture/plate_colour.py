"""A plate's colour space, converted to and from the view the swap works in, by OpenColorIO; plate codes merged.

Tracking, segmentation and the comp work on 8-bit sRGB-encoded Rec.709 (`WORKING`): what MediaPipe was trained on
and what the double's texture is painted in. A plate shot in a camera's log encoding (ARRI LogC, S-Log3, a Cineon
scan) or handed over scene-linear in a wide gamut (ACEScg EXRs) is converted into that view for the swap, and the
pixels the swap changed are converted back into the plate's own space, so the face goes back in the encoding the
rest of the frame is in. The conversion is OpenColorIO's (PyOpenColorIO; its built-in ACES studio config has the
camera log encodings, ACES spaces and display encodings, `available_colorspaces`), one CPU processor per pair
of spaces, cached. A facility's own config is used when ``$OCIO`` names one, as every OCIO application does.

The view is clipped to [0, 1]: values above the working space's white (a highlight in scene-linear) read as white.
Only the changed pixels are converted back (`merged_codes`, used by `capture.frame_files` and the video writer of
`capture.plate_io`), so a highlight the swap did not touch keeps its value, and a plate's codes (16-bit, 10-bit
video decoded at 16) keep their precision wherever the swap did not draw.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

STUDIO_CONFIG = "ocio://studio-config-latest"        # built into OpenColorIO 2.2+: the ACES studio config
WORKING = "sRGB Encoded Rec.709 (sRGB)"              # the swap's view; by this name or an alias of it
WORKING_ALIASES = ("srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "srgb_texture", "sRGB")


def config_name() -> str:
    """The OCIO config in use: ``$OCIO`` when set, else OpenColorIO's built-in ACES studio config."""
    return os.environ.get("OCIO") or STUDIO_CONFIG


@functools.lru_cache(maxsize=4)
def _config(name: str):
    import PyOpenColorIO as ocio

    try:
        return ocio.Config.CreateFromFile(name)
    except (ocio.Exception, ocio.ExceptionMissingFile) as e:
        raise ValueError(f"OCIO config {name!r} could not be read: {str(e).splitlines()[0][:160]} ($OCIO)") from None


def _names(cfg) -> list[str]:
    return [cs.getName() for cs in cfg.getColorSpaces()]


def available_colorspaces() -> list[str]:
    """The colour space names of the config in use (`config_name`)."""
    return _names(_config(config_name()))


def colorspace_families() -> list[tuple[str, str]]:
    """(name, OCIO family) of each colour space of the config in use, in the config's order."""
    return [(cs.getName(), cs.getFamily() or "") for cs in _config(config_name()).getColorSpaces()]


def working_space() -> str:
    """The config's name for `WORKING`; ValueError when the config has no sRGB-encoded Rec.709 space."""
    cfg = _config(config_name())
    for name in (WORKING, *WORKING_ALIASES):
        if resolved := cfg.getCanonicalName(name):
            return resolved
    raise ValueError(f"OCIO config {config_name()!r} has no sRGB-encoded Rec.709 colour space (looked for "
                     f"{', '.join((WORKING, *WORKING_ALIASES))}): the swap works in that view")


def check_colorspace(name: str) -> str:
    """The config's own name for the colour space ``name`` (aliases and roles resolved); ValueError (one line,
    the closest names) when the config has no such space."""
    cfg = _config(config_name())
    if resolved := cfg.getCanonicalName(name):
        return resolved
    close = difflib.get_close_matches(name, _names(cfg), n=4, cutoff=0.3)
    raise ValueError(f"no colour space {name!r} in the OCIO config {config_name()!r}"
                     + (f"; closest: {', '.join(close)}" if close else "")
                     + " (`doppel colorspaces` lists them)")


_DEPTHS = {"uint8": "BIT_DEPTH_UINT8", "uint16": "BIT_DEPTH_UINT16", "float16": "BIT_DEPTH_F16",
           "float32": "BIT_DEPTH_F32"}


@functools.lru_cache(maxsize=32)
def _processor(config: str, source: str, target: str, depth_in: str = "float32", depth_out: str = "float32"):
    """OCIO's CPU processor source -> target, reading ``depth_in`` samples and writing ``depth_out`` ones (integer
    depths are code values: 0..2^n - 1 is 0..1; integer output is clamped and rounded by OCIO)."""
    import PyOpenColorIO as ocio

    return _config(config).getProcessor(source, target).getOptimizedCPUProcessor(
        getattr(ocio, _DEPTHS[depth_in]), getattr(ocio, _DEPTHS[depth_out]), ocio.OPTIMIZATION_DEFAULT)


def _apply(values: np.ndarray, source: str, target: str, out_dtype) -> np.ndarray:
    """(..., 3) samples (uint8, uint16, float16 or float32) -> (..., 3) of ``out_dtype`` through OCIO."""
    import PyOpenColorIO as ocio

    src = np.ascontiguousarray(values if values.dtype.name in _DEPTHS else values.astype(np.float32))
    out = np.empty(src.shape, out_dtype)
    n = src.size // 3
    if n:
        def packed(a):
            return ocio.PackedImageDesc(a.reshape(-1), n, 1, 3, getattr(ocio, _DEPTHS[a.dtype.name]),
                                        a.itemsize, 3 * a.itemsize, 3 * a.itemsize * n)

        _processor(config_name(), source, target, src.dtype.name, out.dtype.name).apply(packed(src), packed(out))
    return out


def declared_colorspace(header: dict, path) -> str | None:
    """The colour space an EXR header declares, as the config names it: its ``colorInteropID``, else the interop
    ID of its ``chromaticities`` (OpenEXR's table of linear scene-referred spaces: ACES AP0 and AP1, Rec.709,
    P3-D65, Rec.2020, AdobeRGB). None when it declares none or linear Rec.709 (the EXR default); a warning when
    its primaries are none of those or the config has no such space."""
    import OpenEXR

    interop = header.get("colorInteropID")
    if not interop and header.get("chromaticities") is not None:
        chroma = tuple(float(v) for v in np.ravel(header["chromaticities"]))
        interop = OpenEXR.chromaticitiesToColorInteropID(chroma)
        if interop is None:
            log.warning("%s: its chromaticities %s are not a known linear space: read as linear Rec.709; give "
                        "--plate-colorspace", path, tuple(round(v, 4) for v in chroma))
            return None
    if not interop or str(interop) == "lin_rec709_scene":
        return None
    name = _config(config_name()).getCanonicalName(str(interop))
    if not name:
        log.warning("%s: its header says %s, not a colour space of the OCIO config %s: read as linear Rec.709; "
                    "give --plate-colorspace", path, interop, config_name())
        return None
    return name


def to_working(values: np.ndarray, colorspace: str) -> np.ndarray:
    """(..., 3) RGB in ``colorspace`` -> (..., 3) uint8 in the working view (`working_space`), clipped to [0, 1]
    and rounded. values: code values (uint8, uint16: their full range is 0..1) or float16 / float32 (NaN read
    as 0)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.isnan(values).any():
        values = np.nan_to_num(values, nan=0.0)
    return _apply(values, check_colorspace(colorspace), working_space(), np.uint8)


def from_working(rgb: np.ndarray, colorspace: str) -> np.ndarray:
    """(..., 3) uint8 in the working view -> (..., 3) float32 RGB in ``colorspace`` (the inverse of
    `to_working` where that is not clipped)."""
    return _apply(np.asarray(rgb, np.uint8), working_space(), check_colorspace(colorspace), np.float32)


def display_of_codes(codes: np.ndarray, colorspace: str | None = None) -> np.ndarray:
    """(..., 3) RGB code values of a plate (uint8, uint16) -> (..., 3) uint8 working view: through OCIO from
    ``colorspace``, or with None the codes rounded to 8 bits (16-bit x: round(x / 257))."""
    if colorspace is not None:
        return to_working(codes, colorspace)
    if codes.dtype == np.uint16:
        return ((codes.astype(np.uint32) + 128) // 257).astype(np.uint8)      # round(x / 257): never a tie
    return np.asarray(codes, np.uint8)


def codes_of_display(rgb: np.ndarray, dtype, colorspace: str | None = None) -> np.ndarray:
    """(..., 3) uint8 working view -> (..., 3) RGB code values of ``dtype`` (uint8 / uint16): `display_of_codes`
    inverted (x 257 for 16 bits without a colour space)."""
    dtype = np.dtype(dtype)
    if colorspace is None:
        return np.asarray(rgb).astype(dtype) * (257 if dtype == np.uint16 else 1)
    top = np.iinfo(dtype).max
    return np.round(np.clip(from_working(rgb, colorspace), 0.0, 1.0) * top).astype(dtype)


def merged_codes(codes: np.ndarray, view: np.ndarray, drawn: np.ndarray, shown: np.ndarray,
                 colorspace: str | None = None) -> np.ndarray:
    """A plate frame's codes with a swap's frame merged in. codes (H, W, 3|4) uint8/uint16, the plate's (a fourth
    channel, alpha, is kept as it is); view: their colour's working view (`display_of_codes`); drawn: the swap's
    frame (uint8, working view); shown: drawn as it is published (a disclosure's watermark and label on it; ``drawn``
    itself when there are none). Where the swap drew (view != drawn), the shown values (`codes_of_display`); where
    only the marks changed a pixel, its code moved by the marks' change in code values, so the rest keeps the plate's
    precision; elsewhere the codes as they are. Returns ``codes`` itself when nothing changed."""
    swap = np.any(view != drawn, axis=-1)
    mark = np.any(shown != drawn, axis=-1) & ~swap
    if not swap.any() and not mark.any():
        return codes
    out = codes.copy()
    out[swap, :3] = codes_of_display(shown[swap], codes.dtype, colorspace)
    if mark.any():
        delta = (codes_of_display(shown[mark], codes.dtype, colorspace).astype(np.int64)
                 - codes_of_display(drawn[mark], codes.dtype, colorspace))
        out[mark, :3] = np.clip(codes[mark, :3].astype(np.int64) + delta, 0, np.iinfo(codes.dtype).max)
    return out
