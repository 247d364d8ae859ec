"""Doppel's invisible watermark: a keyed DWT-DCT quantisation (QIM) mark carrying a 64-bit payload.

The payload is (workspace tag, audit sequence number): 32 bits naming the workspace (a hash of its id) and the
32-bit number of the audit record that describes the file (`assets.disclosure`). It is protected by a CRC-32
and spread over thousands of coefficients (a repetition code with soft-decision combining), so a decode is
either the right payload or reported as absent: a wrong payload would need 32 checksum bits to agree by chance.

Scheme (luma only; the same change is added to R, G and B, so colours keep their hue):

1. the image's luma is resampled to a canonical ``CANON x CANON`` square (the mark survives any resize, the
   aspect ratio need not be kept);
2. one level of a Haar DWT; the LL band is cut into 8x8 blocks, each gets an orthonormal 2-D DCT;
3. six low/mid-frequency coefficients of every block are quantised onto one of two interleaved lattices
   (step ``step``, a key-derived dither per coefficient): lattice 0 or 1 is the coded bit the key assigns to it;
4. the change is brought back to the image's own size (bilinear) and added.

Decoding repeats 1-2, reads a soft value ``cos(2 pi (c - dither) / step)`` per coefficient (+1 on lattice 0,
-1 on lattice 1), sums them per coded bit and checks the CRC; global brightness changes are handled by trying a
few gains. Everything the attacker would need (dither, bit assignment, whitening) derives from the key, a
workspace secret: without it the mark can neither be read nor forged.

Crops: the decoder searches crops keeping 90 % of a side (centred or at either edge), in images and videos.
Not robust to (measured in benchmarks/provenance.py): other crops that shift the canonical grid, rotation, and
heavy geometric edits. Images smaller than ``MIN_SIDE`` pixels on a side are too small to carry
the mark reliably (`WatermarkTooSmall`).
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass

import numpy as np

from core.errors import DoppelError

CANON = 512                     # side of the canonical square the luma is resampled to (pixels)
BLOCK = 8                       # DCT block size in the LL band
MIN_SIDE = 128                  # smallest image side (pixels) the mark is embedded in
PAYLOAD_BITS = 64               # 32-bit workspace tag + 32-bit audit sequence number
CRC_BITS = 32
CODED_BITS = PAYLOAD_BITS + CRC_BITS
# (row, column) DCT frequencies used in every 8x8 block of the LL band: low/mid frequencies survive JPEG,
# blur, resizing and H.264; DC (0, 0) is left alone (brightness).
COEFFS = ((0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (1, 3))
DEFAULT_STEP = 40.0             # QIM step in LL-DCT units (0..510 luma scale): ~42 dB PSNR
MIN_CONFIDENCE = 0.15           # mean |soft bit| below this is "no mark" even if the CRC happened to agree
CROP_FRACTIONS = (0.9,)         # crops (fraction of a side kept) the decoder searches when the whole image fails
CROP_SEARCH_FRAMES = 12         # frames of a video the crop search reads (spread over it)
SEARCH_SIDE = 1024              # longer side (pixels) of the frames kept for a video's crop search
GAINS = (1.0, 1 / 1.1, 1 / 0.9, 1 / 1.05, 1 / 0.95)   # brightness scalings tried on decode

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class WatermarkTooSmall(DoppelError):
    """The image is smaller than the watermark needs (MIN_SIDE pixels on each side)."""


@dataclass(frozen=True)
class Payload:
    """What the mark carries: ``workspace_tag`` (32-bit hash of the workspace id) and ``seq`` (audit record)."""

    workspace_tag: int
    seq: int

    def __post_init__(self):
        for name in ("workspace_tag", "seq"):
            v = getattr(self, name)
            if not (0 <= v < 2**32):
                raise ValueError(f"watermark payload: {name} must fit in 32 bits, got {v}")

    def to_bits(self) -> np.ndarray:
        """(96,) uint8: the 64 payload bits then their CRC-32."""
        raw = self.workspace_tag.to_bytes(4, "big") + self.seq.to_bytes(4, "big")
        crc = zlib.crc32(raw).to_bytes(4, "big")
        return np.unpackbits(np.frombuffer(raw + crc, dtype=np.uint8))

    @staticmethod
    def from_bits(bits: np.ndarray) -> Payload | None:
        """The payload of 96 decoded bits, or None when the checksum does not match."""
        data = np.packbits(bits.astype(np.uint8)).tobytes()
        raw, crc = data[:8], data[8:12]
        if zlib.crc32(raw).to_bytes(4, "big") != crc:
            return None
        return Payload(int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:], "big"))


def workspace_tag(workspace_id: str) -> int:
    """The 32-bit tag of a workspace id, as the payload carries it."""
    return int.from_bytes(hashlib.sha256(b"doppel-workspace-tag\n" + workspace_id.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class WatermarkKey:
    """Key-derived layout of the mark: the secret itself is not kept (never logged, never written)."""

    key_id: str              # 16 hex digits naming the key
    dither: np.ndarray       # (N,) float32 in [0, 1): per-coefficient lattice offset, in units of the step
    bit_of: np.ndarray       # (N,) int64: the coded bit each coefficient carries
    whiten: np.ndarray       # (CODED_BITS,) uint8: XOR mask applied to the coded bits

    def __repr__(self) -> str:
        return f"WatermarkKey(key_id={self.key_id!r})"

    @staticmethod
    def from_secret(secret: bytes) -> WatermarkKey:
        """secret: bytes (>= 16) -> the layout, deterministic for a given secret."""
        if len(secret) < 16:
            raise ValueError("watermark key: the secret must be at least 16 bytes")
        seed = hmac.new(secret, b"doppel-watermark-v1", hashlib.sha256).digest()
        rng = np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))
        n = _n_slots()
        bit_of = rng.permutation(np.arange(n) % CODED_BITS)
        return WatermarkKey(hashlib.sha256(b"doppel-watermark-key-id\n" + seed).hexdigest()[:16],
                            rng.random(n).astype(np.float32), bit_of,
                            rng.integers(0, 2, CODED_BITS).astype(np.uint8))


@dataclass(frozen=True)
class Detection:
    """A decode: ``payload`` (None: no mark found), ``confidence`` in [0, 1] (mean |soft bit|; about 0.07 on an
    unmarked image, near 1 on a freshly marked one), ``gain`` the brightness scaling that decoded."""

    payload: Payload | None
    confidence: float
    gain: float = 1.0

    @property
    def found(self) -> bool:
        return self.payload is not None


def _n_slots() -> int:
    return (CANON // 2 // BLOCK) ** 2 * len(COEFFS)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W) float32 -> (h, w) float32, bilinear with area support when shrinking (PIL)."""
    from PIL import Image

    if a.shape == (h, w):
        return a.astype(np.float32, copy=True)
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F").resize(
        (w, h), Image.BILINEAR), dtype=np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) or (H, W) uint8/float in 0..255 -> (H, W) float32 luma (Rec. 601 weights)."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return rgb[..., :3].astype(np.float32) @ _LUMA


def _resized_luma(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """(H, W, 3|4) or (H, W) image -> (h, w) float32 luma. uint8 colour images are resampled before the luma is
    taken (PIL's integer resampling of three channels is several times faster than a float luma at full size)."""
    from PIL import Image

    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[:2] != (h, w):
        small = Image.fromarray(np.ascontiguousarray(image[..., :3])).resize((w, h), Image.BILINEAR)
        return np.asarray(small, dtype=np.float32) @ _LUMA
    return _resize(luma(image), w, h)


def haar_ll(y: np.ndarray) -> np.ndarray:
    """Numeric kernel. (2H, 2W) -> (H, W): the LL band of one level of the orthonormal Haar DWT, i.e.
    ``pywt.dwt2(y, "haar")[0]`` (the decoder needs only this band; tests check it against PyWavelets)."""
    h, w = y.shape[0] // 2, y.shape[1] // 2
    return y[: 2 * h, : 2 * w].reshape(h, 2, w, 2).sum(axis=(1, 3)) * 0.5


def _analyse(y_canon: np.ndarray, details_too: bool = True) -> tuple[np.ndarray, tuple | None]:
    """Numeric kernel. (CANON, CANON) luma -> (blocks, 8, 8) DCT of the LL band's blocks, and the DWT details
    (None unless ``details_too``: decoding needs only LL)."""
    import pywt
    from scipy.fft import dctn

    if details_too:
        ll, details = pywt.dwt2(y_canon, "haar")
    else:
        ll, details = haar_ll(y_canon), None
    n = ll.shape[0] // BLOCK
    blocks = ll.reshape(n, BLOCK, n, BLOCK).transpose(0, 2, 1, 3).reshape(n * n, BLOCK, BLOCK)
    return dctn(blocks, axes=(1, 2), norm="ortho"), details


def _synthesise(coef: np.ndarray, details: tuple | None) -> np.ndarray:
    """Numeric kernel. Inverse of `_analyse`: block DCTs and DWT details -> (CANON, CANON) luma. Linear: with
    ``details`` None it maps a change of the coefficients to the change of the luma."""
    import pywt
    from scipy.fft import idctn

    blocks = idctn(coef, axes=(1, 2), norm="ortho")
    n = int(round(np.sqrt(blocks.shape[0])))
    ll = blocks.reshape(n, n, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(n * BLOCK, n * BLOCK)
    return pywt.idwt2((ll, details or (None, None, None)), "haar").astype(np.float32)


def _slots(coef: np.ndarray) -> np.ndarray:
    """(blocks, 8, 8) -> (blocks * len(COEFFS),) the coefficients that carry the mark."""
    rows, cols = zip(*COEFFS, strict=True)
    return coef[:, list(rows), list(cols)].reshape(-1)


def check_size(shape: tuple[int, ...]) -> None:
    """Raise WatermarkTooSmall when an image of ``shape`` (H, W, ...) is too small to carry the mark."""
    if min(shape[0], shape[1]) < MIN_SIDE:
        raise WatermarkTooSmall(f"{shape[1]}x{shape[0]} image is smaller than the watermark needs "
                                f"({MIN_SIDE} pixels on each side)")


def embed(image: np.ndarray, payload: Payload, key: WatermarkKey, step: float = DEFAULT_STEP) -> np.ndarray:
    """Mark ``image`` (H, W, 3|4) or (H, W) uint8 with ``payload`` -> a new uint8 array of the same shape.

    Alpha is kept unchanged. Raises WatermarkTooSmall when a side is under MIN_SIDE pixels.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"watermark.embed: expected uint8 pixels, got {image.dtype}")
    check_size(image.shape)
    h, w = image.shape[:2]
    coef, _ = _analyse(_canonical(image))
    bits = (payload.to_bits() ^ key.whiten)[key.bit_of].astype(np.float32)
    flat = _slots(coef)
    # nearest point of the bit's lattice: step * (k + dither + bit / 2)
    offset = (key.dither + 0.5 * bits) * step
    target = np.round((flat - offset) / step) * step + offset
    rows, cols = zip(*COEFFS, strict=True)
    new = coef.copy()
    new[:, list(rows), list(cols)] = target.reshape(coef.shape[0], len(COEFFS))
    delta = _synthesise(new - coef, None)       # the transforms are linear: only the change is synthesised
    step_full = np.rint(_resize(delta, w, h)).astype(np.int16)      # image + round(delta) = round(image + delta)
    out = image.astype(np.int16)
    if out.ndim == 2:
        out += step_full
    else:
        out[..., :3] += step_full[..., None]
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _crop_hypotheses() -> list[tuple[float, float, float, float]]:
    """(fx, ax, fy, ay): the image is a crop keeping fraction f of the marked width/height, anchored at a (0: the
    start, 0.5: centred, 1: the end). The first, (1, 0, 1, 0), is the uncropped image."""
    per_axis = [(1.0, 0.0)] + [(f, a) for f in CROP_FRACTIONS for a in (0.5, 0.0, 1.0)]
    return [(fx, ax, fy, ay) for fx, ax in per_axis for fy, ay in per_axis]


def _canonical(image: np.ndarray, hyp: tuple[float, float, float, float] = (1.0, 0.0, 1.0, 0.0)) -> np.ndarray:
    """(H, W, C) or (H, W) image -> (CANON, CANON) luma: the image resampled where it would sit in the marked
    image under ``hyp`` (see `_crop_hypotheses`); the part cropped away is filled with the mean luma."""
    fx, ax, fy, ay = hyp
    if fx == 1.0 and fy == 1.0:
        return _resized_luma(image, CANON, CANON)
    w, h = max(1, round(CANON * fx)), max(1, round(CANON * fy))
    x0, y0 = round((CANON - w) * ax), round((CANON - h) * ay)
    part = _resized_luma(image, w, h)
    out = np.full((CANON, CANON), float(part.mean()), dtype=np.float32)
    out[y0:y0 + h, x0:x0 + w] = part
    return out


def soft_bits(image: np.ndarray, key: WatermarkKey, step: float = DEFAULT_STEP,
              gains: tuple[float, ...] = GAINS, crop: tuple[float, float, float, float] = (1.0, 0.0, 1.0, 0.0),
              ) -> np.ndarray:
    """(G, CODED_BITS) float: per brightness gain, the summed soft value of every coded bit (positive: 0).

    image: (H, W, 3|4) or (H, W), uint8 or float in 0..255. Sums of several frames of one video add up.
    crop: the crop hypothesis (fx, ax, fy, ay) read under (`_crop_hypotheses`); default: not cropped.
    """
    coef, _ = _analyse(_canonical(image, crop), details_too=False)
    flat = _slots(coef)
    weight = _inside_weights(crop)
    out = np.empty((len(gains), CODED_BITS), dtype=np.float64)
    for i, g in enumerate(gains):
        soft = np.cos(2 * np.pi * (flat * g / step - key.dither)) * weight
        out[i] = np.bincount(key.bit_of, weights=soft, minlength=CODED_BITS)
    return out


def _inside_weights(crop: tuple[float, float, float, float]) -> np.ndarray | float:
    """(slots,) weights: 0 for the coefficients of blocks the crop hypothesis cut away (they carry only noise),
    the others scaled so that the weights still sum to the number of slots (confidences stay comparable)."""
    fx, ax, fy, ay = crop
    if fx == 1.0 and fy == 1.0:
        return 1.0
    side = CANON // 2 // BLOCK * BLOCK * 2              # canonical pixels covered by the blocks
    n, px = side // (2 * BLOCK), 2 * BLOCK              # blocks per side, canonical pixels per block

    def inside(f: float, a: float) -> np.ndarray:
        lo = round((CANON - round(CANON * f)) * a)
        hi = lo + round(CANON * f)
        start = np.arange(n) * px
        return (start >= lo) & (start + px <= hi)

    block = (inside(fy, ay)[:, None] & inside(fx, ax)[None, :]).reshape(-1).astype(np.float64)
    w = np.repeat(block, len(COEFFS))
    return w * (w.size / max(w.sum(), 1.0))


def decide(soft: np.ndarray, key: WatermarkKey, gains: tuple[float, ...] = GAINS,
           min_confidence: float = MIN_CONFIDENCE) -> Detection:
    """(G, CODED_BITS) summed soft values (from `soft_bits`, possibly summed over frames) -> a Detection."""
    per_bit = np.bincount(key.bit_of, minlength=CODED_BITS).astype(np.float64)
    best = Detection(None, 0.0)
    for i, g in enumerate(gains):
        conf = float(np.mean(np.abs(soft[i]) / per_bit))
        if conf < min_confidence:
            best = best if best.confidence >= conf else Detection(None, conf, g)
            continue
        bits = (soft[i] < 0).astype(np.uint8) ^ key.whiten
        payload = Payload.from_bits(bits)
        if payload is not None:
            return Detection(payload, conf, g)
        best = best if best.confidence >= conf else Detection(None, conf, g)
    return best


def decode(image: np.ndarray, key: WatermarkKey, step: float = DEFAULT_STEP, search_crops: bool = True,
           ) -> Detection:
    """Read the mark of one image (H, W, 3|4) or (H, W), uint8 or float in 0..255.

    When the whole image does not decode and ``search_crops``, the crop hypotheses are tried too (a few tens of
    ms each); every try must pass the CRC-32 and the confidence floor, so the search adds no false payloads to
    speak of (benchmarks/provenance.py counts them on unmarked images).
    """
    best = Detection(None, 0.0)
    for hyp in _crop_hypotheses() if search_crops else _crop_hypotheses()[:1]:
        det = decide(soft_bits(image, key, step, crop=hyp), key)
        if det.found:
            return det
        best = best if best.confidence >= det.confidence else det
    return best


def decode_frames(frames, key: WatermarkKey, step: float = DEFAULT_STEP, search_crops: bool = True) -> Detection:
    """Read the mark of a video: soft values summed over ``frames`` (an iterable of (H, W, 3) uint8), so a
    mark too weak in any one frame (after H.264) is still read from all of them together.

    When the whole frames do not decode and ``search_crops``, the crop hypotheses are read on CROP_SEARCH_FRAMES
    frames spread over the video (kept at most SEARCH_SIDE pixels on a side: ~1.5 s more for an unmarked video)."""
    total, n, kept, stride = None, 0, [], 1
    for i, f in enumerate(frames):
        s = soft_bits(f, key, step)
        total = s if total is None else total + s
        n += 1
        if search_crops and i % stride == 0:
            kept.append(_search_copy(f))
            if len(kept) > CROP_SEARCH_FRAMES:      # every other one: still spread over the whole video
                kept, stride = kept[::2], stride * 2
    if total is None:
        return Detection(None, 0.0)
    best = decide(total / n, key)
    for hyp in _crop_hypotheses()[1:] if search_crops and not best.found else []:
        det = decide(sum(soft_bits(f, key, step, crop=hyp) for f in kept) / len(kept), key)
        if det.found:
            return det
        best = best if best.confidence >= det.confidence else det
    return best


def _search_copy(frame: np.ndarray) -> np.ndarray:
    """A frame kept for the crop search: its luma at most SEARCH_SIDE pixels on the longer side (float32)."""
    y = luma(frame)
    scale = SEARCH_SIDE / max(y.shape[:2])
    return _resize(y, round(y.shape[1] * scale), round(y.shape[0] * scale)) if scale < 1 else y


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
