"""Compositing a rendered face into a plate: the mask, colour transfer, and three blends.

Images here are numpy arrays in the plate's pixel grid: rgb (H, W, 3) float32 sRGB in [0, 1] (uint8 is
accepted and converted), masks (H, W) float32 in [0, 1]. The recipe follows what face-replacement users ask
of DeepFaceLab's and Faceswap's mergers (RESEARCH-NOTES.md): the mask is the rendered face region
intersected with the plate's person segmentation, minus occluders (hands), eroded and feathered; colour is
matched in CIELAB by mean and standard deviation inside the mask, smoothed over time so it does not
flicker; the blend is Poisson (OpenCV's seamlessClone with an anchor fixed for the whole shot: a moving
anchor makes it jitter), multi-band (Laplacian pyramids, Burt & Adelson 1983) or a plain feather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLENDS = ("poisson", "multiband", "feather")


def as_float_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float -> float32 in [0, 1]."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 (rounded)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """(H, W) bool: the convex hull of points (N, 2) px (Doppel pixel convention, centres at +0.5) filled."""
    import cv2

    h, w = shape
    m = np.zeros((h, w), np.uint8)
    pts = np.asarray(points, np.float64)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) >= 3:
        hull = cv2.convexHull((pts - 0.5).round().astype(np.int32))
        cv2.fillConvexPoly(m, hull, 1)
    return m.astype(bool)


def occluder_mask(shape: tuple[int, int], hands: np.ndarray, dilate_px: float) -> np.ndarray:
    """(H, W) bool: the hands in front of the face. hands (N, 21, 2) px (NaN rows = not detected); each
    hand's convex hull grown by dilate_px (the hull of 21 joints misses the fingers' flesh)."""
    import cv2

    occ = np.zeros(shape, bool)
    for hand in np.asarray(hands, np.float64).reshape(-1, 21, 2):
        if np.isfinite(hand).all():
            occ |= polygon_mask(shape, hand)
    r = int(round(dilate_px))
    if r > 0 and occ.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        occ = cv2.dilate(occ.astype(np.uint8), k).astype(bool)
    return occ


def skin_like(rgb: np.ndarray, sample: np.ndarray, tolerance: float = 2.5) -> np.ndarray:
    """(H, W) bool: pixels whose colour is like the skin in ``sample`` (H, W) bool (a region of the plate's face
    that is mostly skin): CIELAB a, b within ``tolerance`` robust standard deviations (1.4826 MAD, at least 2 units)
    of the sample's medians and L within twice that. Hair, eyebrows, background and clothing fail it."""
    L = lab(rgb)
    px = L[np.asarray(sample, bool)]
    if len(px) < 16:
        return np.ones(L.shape[:2], bool)
    med = np.median(px, 0)
    sd = np.maximum(1.4826 * np.median(np.abs(px - med), 0), 2.0)
    z = np.abs(L - med) / sd
    return (z[..., 0] < 1.5 * tolerance) & (z[..., 1] < tolerance) & (z[..., 2] < tolerance)


def face_mask(coverage: np.ndarray, person: np.ndarray | None = None, occluder: np.ndarray | None = None,
              erode_px: float = 3.0, feather_px: float = 6.0, person_threshold: float = 0.5) -> np.ndarray:
    """The blend mask (H, W) float32 in [0, 1].

    coverage (H, W) in [0, 1]: where the rendered face is; person (H, W) probability (MediaPipe selfie
    segmentation) or None; occluder (H, W) bool (hands) or None. The hard mask is coverage > 0.5 and person >
    person_threshold and not occluder, eroded by erode_px, then feathered by a Gaussian of sigma feather_px / 2
    inside the eroded mask, so it fades to 0 inside the face edge and is exactly 0 outside it."""
    import cv2

    hard = np.asarray(coverage) > 0.5
    if person is not None:
        hard &= np.asarray(person) > person_threshold
    if occluder is not None:
        hard &= ~np.asarray(occluder, bool)
    m = hard.astype(np.uint8)
    r = int(round(erode_px))
    if r > 0:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    soft = m.astype(np.float32)
    if feather_px > 0 and m.any():
        sigma = feather_px / 2.0
        soft = cv2.GaussianBlur(soft, (0, 0), sigma) * m      # fades to 0 at the eroded edge, inside it
        soft = cv2.GaussianBlur(soft, (0, 0), sigma / 2) * m  # smooth, and still 0 outside the eroded mask
    return np.clip(soft, 0.0, 1.0)


def lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB float [0, 1] (H, W, 3) -> CIELAB float32 (L in [0, 100]) via OpenCV."""
    import cv2

    return cv2.cvtColor(as_float_rgb(rgb), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab_img: np.ndarray) -> np.ndarray:
    import cv2

    return np.clip(cv2.cvtColor(lab_img.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def lab_stats(rgb: np.ndarray, mask: np.ndarray, min_pixels: int = 16) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean (3,), std (3,)) of the CIELAB pixels where mask > 0.5, or None when fewer than min_pixels."""
    sel = np.asarray(mask) > 0.5
    if sel.sum() < min_pixels:
        return None
    px = lab(rgb)[sel].astype(np.float64)
    return px.mean(0), px.std(0) + 1e-3


@dataclass
class ColourMatcher:
    """Reinhard colour transfer in CIELAB with the transfer smoothed over time.

    Per frame, the scale (target std / source std) and shift are blended into running values with weight
    ``smoothing`` (0: no memory, a new transfer every frame; 0.8: an exponential moving average that follows a
    change of light within about 5 frames), so the face does not flicker when the mask changes.
    max_scale bounds the per-channel std ratio (a tiny mask must not blow the contrast up)."""

    smoothing: float = 0.8          # weight of the running transfer, in [0, 1)
    max_scale: float = 2.5          # std ratios are clipped to [1 / max_scale, max_scale]
    channels: tuple[int, ...] = (0, 1, 2)   # Lab channels matched: (0,) = lightness only (keeps the hue)
    _scale: np.ndarray | None = None
    _mean_src: np.ndarray | None = None
    _mean_dst: np.ndarray | None = None

    def update(self, src_stats, dst_stats) -> bool:
        """Fold one frame's statistics (from `lab_stats`; None = not measurable) in; False when nothing is known."""
        if src_stats is None or dst_stats is None:
            return self._scale is not None
        (ms, ss), (md, sd) = src_stats, dst_stats
        scale = np.clip(sd / ss, 1.0 / self.max_scale, self.max_scale)
        if self._scale is None:
            self._scale, self._mean_src, self._mean_dst = scale, ms, md
        else:
            a = self.smoothing
            self._scale = a * self._scale + (1 - a) * scale
            self._mean_src = a * self._mean_src + (1 - a) * ms
            self._mean_dst = a * self._mean_dst + (1 - a) * md
        return True

    def state(self) -> list[list[float]] | None:
        """The running transfer as JSON-able lists [scale, source mean, target mean] (float64, so a JSON round trip
        is exact), or None before the first `update`: what a checkpoint keeps (`restore`)."""
        if self._scale is None:
            return None
        return [np.asarray(v, np.float64).tolist() for v in (self._scale, self._mean_src, self._mean_dst)]

    def restore(self, state: list[list[float]] | None) -> None:
        """Take up a running transfer saved by `state`."""
        if state is None:
            self._scale = self._mean_src = self._mean_dst = None
        else:
            self._scale, self._mean_src, self._mean_dst = (np.array(v, np.float64) for v in state)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H, W, 3) sRGB -> colour-matched float32 (unchanged before the first `update`)."""
        if self._scale is None:
            return as_float_rgb(rgb)
        x = lab(rgb)
        c = list(self.channels)
        x[..., c] = (x[..., c] - self._mean_src[c]) * self._scale[c] + self._mean_dst[c]
        return lab_to_rgb(x)


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """cv2.GaussianBlur of x (H, W[, C]) float32 with sigma px; wide sigmas run on a 2^k-times smaller copy (area
    downsampling, blur, linear upsampling), so the cost does not grow with sigma."""
    import cv2

    h, w = x.shape[:2]
    k = int(max(0, np.floor(np.log2(max(sigma, 1.0) / 2.0))))
    k = min(k, int(np.log2(max(min(h, w), 1))) - 1) if min(h, w) > 2 else 0
    if k <= 0:
        return cv2.GaussianBlur(x, (0, 0), sigma)
    small = cv2.resize(x, (max(1, w >> k), max(1, h >> k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 2 ** k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def shading_match(fg: np.ndarray, bg: np.ndarray, weight: np.ndarray, sigma_px: float,
                  channels: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """fg (H, W, 3) sRGB carrying bg's low frequencies: fg + G(bg - fg) in CIELAB, float32 sRGB [0, 1].

    G is a Gaussian of sigma_px px normalised over the pixels where weight (H, W) bool is set (skin both images
    share: the face without its eyes, brows, lips and nose), so the correction carries the plate's skin tone and
    shading but not its features. Where weight has no support within a few sigma, the estimate of a twice wider
    Gaussian takes over (coarse to fine, down to the weighted mean), so holes fill smoothly. channels: the CIELAB
    channels corrected ((0,): lightness only, the double's hue kept). fg unchanged when weight has fewer than 16
    pixels or sigma_px <= 0."""
    w = np.asarray(weight, bool).astype(np.float32)
    fg = as_float_rgb(fg)
    if w.sum() < 16 or sigma_px <= 0:
        return fg
    lf = lab(fg)
    diff = (lab(bg) - lf) * w[..., None]
    floor = 0.05          # below ~5 % support the next coarser estimate takes over smoothly
    est = np.broadcast_to(diff.sum((0, 1)) / w.sum(), diff.shape)
    sigmas = [sigma_px * 2.0 ** k for k in range(8) if sigma_px * 2.0 ** k < 2 * max(w.shape)]
    for sg in sigmas[::-1]:
        num, den = _gaussian_blur(diff, sg), _gaussian_blur(w, sg)[..., None]
        est = (num + floor * est) / (den + floor)
    out = lf.copy()
    out[..., list(channels)] += est[..., list(channels)]
    return lab_to_rgb(out)


def blend_feather(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """fg, bg (H, W, 3) float [0, 1], alpha (H, W) -> fg * alpha + bg * (1 - alpha)."""
    a = np.asarray(alpha, np.float32)[..., None]
    return as_float_rgb(fg) * a + as_float_rgb(bg) * (1 - a)


def blend_multiband(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, levels: int = 5) -> np.ndarray:
    """Laplacian-pyramid blend: each band of fg and bg mixed with the mask blurred to that band's scale, so low
    frequencies (shading, colour) mix over a wide seam and fine detail over a narrow one."""
    import cv2

    fg, bg = as_float_rgb(fg), as_float_rgb(bg)
    a = np.asarray(alpha, np.float32)
    h, w = a.shape
    levels = max(1, min(levels, int(np.log2(max(2, min(h, w)))) - 2))
    gf, gb, ga = [fg], [bg], [a]
    for _ in range(levels):
        gf.append(cv2.pyrDown(gf[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        ga.append(cv2.pyrDown(ga[-1]))
    out = gf[-1] * ga[-1][..., None] + gb[-1] * (1 - ga[-1][..., None])
    for i in range(levels - 1, -1, -1):
        size = (gf[i].shape[1], gf[i].shape[0])
        lf = gf[i] - cv2.pyrUp(gf[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        ai = ga[i][..., None]
        out = cv2.pyrUp(out, dstsize=size) + lf * ai + lb * (1 - ai)
    return np.clip(out, 0.0, 1.0)


def poisson_anchor(box: tuple[int, int, int, int]) -> tuple[int, int]:
    """The seamlessClone centre that keeps a source already in plate coordinates in place, for a mask whose
    bounding box is box = (x0, y0, x1, y1) (inclusive, array indices): OpenCV puts the box at centre - size // 2."""
    x0, y0, x1, y1 = box
    return x0 + (x1 - x0 + 1) // 2, y0 + (y1 - y0 + 1) // 2


def blend_poisson(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Poisson (gradient-domain) blend with a fixed anchor: box (x0, y0, x1, y1) is the shot's face box (the same
    for every frame of a shot, inside the image by >= 2 px). Its two corners are added to the mask as single
    pixels (where fg is set to bg, so they change nothing), which pins OpenCV's bounding box, hence the anchor,
    for the whole shot. The result is then feathered with alpha, so pixels outside the soft mask stay the plate's."""
    import cv2

    fg, bg = as_float_rgb(fg), as_float_rgb(bg)
    a = np.asarray(alpha, np.float32)
    h, w = a.shape
    x0, y0, x1, y1 = box
    if not (2 <= x0 < x1 <= w - 3 and 2 <= y0 < y1 <= h - 3):
        raise ValueError(f"blend_poisson: box {box} must lie inside the {w}x{h} image by 2 px")
    m = np.zeros((h, w), np.uint8)
    inside = a > 0.02
    inside[:y0 + 1] = False
    inside[y1:] = False
    inside[:, :x0 + 1] = False
    inside[:, x1:] = False
    if not inside.any():
        return bg
    m[inside] = 255
    src = fg.copy()
    for (x, y) in ((x0, y0), (x1, y1)):
        m[y, x] = 255
        src[y, x] = bg[y, x]
    out = cv2.seamlessClone(to_uint8(src), to_uint8(bg), m, poisson_anchor(box), cv2.NORMAL_CLONE)
    return blend_feather(out.astype(np.float32) / 255.0, bg, a)


def blend(mode: str, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray,
          box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """One of BLENDS by name (poisson needs the shot's fixed box)."""
    if mode == "feather":
        return blend_feather(fg, bg, alpha)
    if mode == "multiband":
        return blend_multiband(fg, bg, alpha)
    if mode == "poisson":
        if box is None:
            raise ValueError("blend_poisson needs the shot's face box")
        return blend_poisson(fg, bg, alpha, box)
    raise ValueError(f"--blend must be one of {', '.join(BLENDS)}, got {mode!r}")


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB arrays (..., 3) (scikit-image's implementation)."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(np.asarray(lab1, np.float64), np.asarray(lab2, np.float64))


def seam_difference(image: np.ndarray, matte: np.ndarray, band_px: int = 6,
                    reference: np.ndarray | None = None, natural_max: float = 3.0) -> tuple[float, float]:
    """How visible a composite's seam is: (mean CIEDE2000, share of the edge measured).

    image (H, W, 3) the composite (sRGB, uint8 or float [0, 1]); matte (H, W) the blend mask in [0, 1]. At every
    pixel of the matte's edge (matte > 0.5 next to matte <= 0.5), the mean CIELAB colour of the ``band_px`` band
    just inside the edge is compared with the band just outside, both averaged over a (2 band_px + 1)^2 window
    around the edge pixel. reference (H, W, 3) or None: the plate (or ground truth) at the same pixels; when
    given, only edge pixels where the reference itself is continuous across the edge (its own difference below
    ``natural_max``) are scored, so a hand's or the jaw's real outline is not counted as a seam.
    (nan, 0.0) when the matte has no edge (or none is continuous)."""
    import cv2

    hard = (np.asarray(matte) > 0.5).astype(np.uint8)
    k = np.ones((2 * band_px + 1, 2 * band_px + 1), np.uint8)
    inner = hard.astype(bool) & ~(cv2.erode(hard, k) > 0)
    outer = (cv2.dilate(hard, k) > 0) & ~hard.astype(bool)
    edge = inner & (cv2.dilate(outer.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    if not edge.any():
        return float("nan"), 0.0

    def sides(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L = lab(img)
        out = []
        for band in (inner, outer):
            w = band.astype(np.float32)
            num = cv2.boxFilter(L * w[..., None], -1, k.shape, normalize=False)
            den = cv2.boxFilter(w, -1, k.shape, normalize=False)
            out.append(num[edge] / np.maximum(den[edge], 1e-6)[:, None])
        return out[0], out[1]

    d = delta_e_2000(*sides(image))
    keep = np.ones(len(d), bool)
    if reference is not None:
        keep = delta_e_2000(*sides(reference)) < natural_max
    if not keep.any():
        return float("nan"), 0.0
    return float(d[keep].mean()), float(keep.mean())
