"""A frame-file plate's colour space, converted to and from the view the swap works in, by OpenColorIO.

Tracking, segmentation and the comp work on 8-bit sRGB-encoded Rec.709 (`WORKING`): what MediaPipe was trained on
and what the double's texture is painted in. A plate shot in a camera's log encoding (ARRI LogC, S-Log3, a Cineon
scan) or handed over scene-linear in a wide gamut (ACEScg EXRs) is converted into that view for the swap, and the
pixels the swap changed are converted back into the plate's own space, so the face goes back in the encoding the
rest of the frame is in. The conversion is OpenColorIO's (PyOpenColorIO; its built-in ACES studio config has the
camera log encodings, ACES spaces and display encodings, `available_colorspaces`), one CPU processor per pair
of spaces, cached. A facility's own config is used when ``$OCIO`` names one, as every OCIO application does.

The view is clipped to [0, 1]: values above the working space's white (a highlight in scene-linear) read as white.
Only the changed pixels are converted back (`capture.frame_files`), so a highlight the swap did not touch keeps
its value.
"""

from __future__ import annotations

import difflib
import functools
import os

import numpy as np

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


@functools.lru_cache(maxsize=32)
def _processor(config: str, source: str, target: str):
    return _config(config).getProcessor(source, target).getDefaultCPUProcessor()


def _convert(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    out = np.array(rgb, np.float32, order="C", copy=True).reshape(-1, 3)
    if out.size:
        _processor(config_name(), source, target).applyRGB(out)       # in place
    return out.reshape(np.shape(rgb))
def to_working(rgb: np.ndarray, colorspace: str) -> np.ndarray:
    """(..., 3) float RGB in ``colorspace`` (integer files' code values scaled to [0, 1]) -> (..., 3) uint8 in the
    working view (`working_space`), clipped to [0, 1] and rounded."""
    x = _convert(np.nan_to_num(rgb, nan=0.0), check_colorspace(colorspace), working_space())
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def from_working(rgb: np.ndarray, colorspace: str) -> np.ndarray:
    """(..., 3) uint8 in the working view -> (..., 3) float32 RGB in ``colorspace`` (the inverse of
    `to_working` where that is not clipped)."""
    return _convert(np.asarray(rgb, np.float32) / 255.0, working_space(), check_colorspace(colorspace))
