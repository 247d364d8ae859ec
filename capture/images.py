"""Reading capture images safely: the size an image declares in its header is checked before anything
is decoded, so a file declaring 30000 x 30000 pixels is refused in microseconds instead of costing
gigabytes; a corrupt, empty or truncated file is a ValueError naming it."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

T, R = TypeVar("T"), TypeVar("R")
MAX_IMAGE_PIXELS = 100_000_000   # 100 megapixels (e.g. 12000 x 8000): larger capture images are refused


def image_header_size(path: str | os.PathLike, data: bytes | None = None) -> tuple[int, int]:
    """(W, H) that the image file declares, read from its header only (Pillow, nothing decoded).
    data: the file's bytes when already read."""
    import io

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        src = io.BytesIO(data) if data is not None else path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None   # our own limit applies, below
            try:
                with Image.open(src) as im:
                    return int(im.width), int(im.height)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"{path}: image could not be decoded (corrupt or unsupported file; its header: "
                         f"{type(e).__name__})") from e


def check_image_size(path: str | os.PathLike, data: bytes | None = None,
                     max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(W, H) from the header; ValueError naming the file when it declares more than max_pixels."""
    w, h = image_header_size(path, data)
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: image declares an empty size {w}x{h}")
    if w * h > max_pixels:
        raise ValueError(f"{path}: image declares {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the limit of "
                         f"{max_pixels / 1e6:.0f} MP for capture images (capture.images.MAX_IMAGE_PIXELS); "
                         "is the file corrupt? Downscale it if it is real")
    return w, h


def read_image(path: str | os.PathLike, flags: int | None = None, data: bytes | None = None) -> np.ndarray:
    """The decoded image (cv2 flags: default cv2.IMREAD_COLOR -> (H, W, 3) uint8 BGR), after the header
    size check. ValueError naming the file when it is empty, corrupt or too large; FileNotFoundError when
    missing."""
    import cv2

    path = Path(path)
    if data is None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image does not exist")
        data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: image file is empty")
    check_image_size(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    if img is None or img.size == 0:
        raise ValueError(f"{path}: image could not be decoded (corrupt or unsupported file)")
    return img


def jpeg_truncated(path: str | os.PathLike, data: bytes) -> bool:
    """Whether ``data``, the bytes of the file at ``path``, is a JPEG cut short: no end-of-image marker at its end
    (an interrupted copy; OpenCV 4.11 refuses most such files but decodes one cut just before the marker, and other
    readers, COLMAP's among them, decode what is there)."""
    return Path(path).suffix.lower() in (".jpg", ".jpeg") and data[-2:] != b"\xff\xd9"


@contextlib.contextmanager
def opencv_errors_only() -> Iterator[None]:
    """Inside the block OpenCV logs errors only (its level is the process's: enter it once, not per thread), for
    code that reports a photo it cannot decode itself (OpenCV's own "PNG input buffer is incomplete" warning)."""
    import cv2

    level = cv2.getLogLevel()
    cv2.setLogLevel(2)                       # OpenCV's levels: 2 ERROR, 3 WARNING
    try:
        yield
    finally:
        cv2.setLogLevel(level)


def check_threads(num_threads: int | None, what: str = "num_threads") -> None:
    """ValueError unless ``num_threads`` is None (every core) or a whole number of at least 1 (a -1 or a 0, which
    some libraries read as "all", is refused here rather than run on one thread or on every core unasked)."""
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"{what} {num_threads!r}: expected None (every core) or a whole number >= 1")


def map_photos(work: Callable[[T], R], items: Iterable[T], num_threads: int | None = None) -> Iterator[R]:
    """``work(item)`` for every item, in the items' order, on ``num_threads`` threads (default: every core this
    process may use, `core.cpu_quota.usable_cores`), with OpenCV logging errors only (`opencv_errors_only`): for
    photos that are decoded and searched one by one (OpenCV lets go of Python's lock while it works). The results
    come in order as they are ready; a caller that stops early (an error, Ctrl-C) drops the items not begun."""
    from concurrent.futures import ThreadPoolExecutor

    from core.cpu_quota import usable_cores

    check_threads(num_threads)
    pool = ThreadPoolExecutor(max_workers=usable_cores() if num_threads is None else num_threads)
    try:
        with opencv_errors_only():
            yield from pool.map(work, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def photo_problem(path: str | os.PathLike) -> str | None:
    """Why the photo at ``path`` cannot be used whole, as one line naming it (empty, corrupt, declaring too many
    pixels, a JPEG cut short), or None when it decodes whole. Decodes it fully (about 15 ms for 1024x768)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        read_image(path, data=data)
    except (OSError, ValueError) as e:
        return str(e)
    if jpeg_truncated(path, data):
        return f"{path}: JPEG is truncated (no end-of-image marker)"
    return None
