"""DPX frames (SMPTE 268M), the scan and conform format of film and TV plates, read and written by OpenImageIO.

A plate's DPX frames are read as their samples (8-bit as uint8; 10-, 12- and 16-bit as uint16, scaled to the
full 16-bit range the way OpenImageIO does: a 10-bit code v reads as v * 64 + v // 16) and written back under the
source's own header: OpenImageIO keeps what it models of it (bit depth, packing, transfer and colorimetric codes,
timecode, keycode, frame rate, shutter angle, input device, ...) and rewrites the rest (the file name, the
creation time, the software field). One element of RGB or RGBA; other layouts (luma only, YCbCr, several
elements, floating point) are refused in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DPX = ".dpx"
LOG_TRANSFERS = ("Logarithmic", "Printing density")   # header transfer codes of a log-encoded scan


def _attribute(spec, name: str, default=None):
    try:                               # a header field that is not valid text (some writers leave garbage) reads
        value = spec.getattribute(name)            # as absent
    except UnicodeDecodeError:
        return default
    return default if value is None else value


def dpx_spec(path: str | os.PathLike):
    """The OpenImageIO ImageSpec of a DPX frame, from its header; ValueError (one line) when it cannot be read or
    is not one element of 8- to 16-bit RGB(A); FileNotFoundError when missing."""
    inp = _open(Path(path))
    try:
        return _checked(Path(path), inp.spec())
    finally:
        inp.close()


def _open(path: Path):
    import OpenImageIO as oiio

    if not path.is_file():
        raise FileNotFoundError(f"{path}: image does not exist")
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise ValueError(f"{path}: DPX could not be read (corrupt or unsupported: {oiio.geterror()[:160]})")
    return inp


def _checked(path: Path, spec):
    """``spec`` when it is one element of 8- to 16-bit RGB(A); ValueError (one line) otherwise."""
    elements = int(_attribute(spec, "oiio:subimages", 1) or 1)
    if elements != 1:
        raise ValueError(f"{path}: a DPX of {elements} image elements: give one RGB(A) element a file")
    descriptor = str(_attribute(spec, "dpx:ImageDescriptor", ""))
    if spec.nchannels not in (3, 4) or descriptor not in ("RGB", "RGBA"):
        raise ValueError(f"{path}: a DPX of {descriptor or spec.nchannels} channels: expected RGB or RGBA")
    if str(spec.format) not in ("uint8", "uint16"):
        raise ValueError(f"{path}: a DPX of {spec.format} samples: expected 8- to 16-bit integers")
    return spec


def dpx_transfer(spec) -> str:
    """The transfer characteristic the header declares ("Linear", "Logarithmic", "Printing density", ...)."""
    return str(_attribute(spec, "dpx:Transfer", "") or "")


def _positive_number(path: str | os.PathLike, name: str) -> float | None:
    """A DPX header field ``name`` as a finite number above 0, or None (absent, undefined, zero, not a number);
    an unreadable file raises `dpx_spec`'s ValueError."""
    raw = _attribute(dpx_spec(path), name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def dpx_frame_rate(path: str | os.PathLike) -> float | None:
    """The frame rate (frames/s) a DPX header declares, or None (absent, zero or not a number)."""
    return _positive_number(path, "dpx:FrameRate")


def dpx_shutter_angle(path: str | os.PathLike) -> float | None:
    """The camera's shutter angle (degrees) a DPX film header declares, or None (absent, undefined, zero, not a
    number)."""
    return _positive_number(path, "dpx:ShutterAngle")


def read_dpx(path: str | os.PathLike):
    """((H, W, 3|4) RGB(A) samples, uint8 or uint16, the ImageSpec) of a DPX frame (`dpx_spec`'s checks), in one
    open of the file."""
    import OpenImageIO as oiio

    path = Path(path)
    inp = _open(path)
    try:
        spec = _checked(path, inp.spec())
        pixels = inp.read_image(oiio.UINT8 if str(spec.format) == "uint8" else oiio.UINT16)
    finally:
        inp.close()
    if pixels is None or pixels.shape != (spec.height, spec.width, spec.nchannels):
        raise ValueError(f"{path}: DPX pixels could not be read ({oiio.geterror()[:160]})")
    return np.ascontiguousarray(pixels), spec


def write_dpx(out: str | os.PathLike, samples: np.ndarray, spec=None) -> None:
    """Write (H, W, 3|4) RGB(A) uint8/uint16 samples as a DPX under ``spec`` (a source's, `read_dpx`; None: a new
    10-bit RGB(A) header)."""
    import OpenImageIO as oiio

    samples = np.ascontiguousarray(samples)
    if spec is None:
        spec = oiio.ImageSpec(samples.shape[1], samples.shape[0], samples.shape[2], oiio.UINT16)
        spec.attribute("oiio:BitsPerSample", 10)
        samples = samples.astype(np.uint16) * 257 if samples.dtype == np.uint8 else samples
    output = oiio.ImageOutput.create(str(out))
    if output is None or not output.open(str(out), spec):
        raise OSError(f"{out}: could not write the DPX ({oiio.geterror()[:160]})")
    try:
        if not output.write_image(samples):
            raise OSError(f"{out}: could not write the DPX ({output.geterror()[:160]})")
    finally:
        output.close()
