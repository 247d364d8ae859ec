"""Frame ranges as users type them: ``--frames A:B`` of a shot, a clip, a take."""

from __future__ import annotations


def parse_frames(spec: str | None, total: int) -> range:
    """'A:B' (B exclusive, either side may be empty) -> a range within [0, total); None -> every frame."""
    if spec is None:
        return range(total)
    a, sep, b = spec.partition(":")
    try:
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else total
        if not sep:
            hi = lo + 1
    except ValueError:
        raise ValueError(f"--frames must be A:B (frame numbers), got {spec!r}") from None
    if lo >= hi and 0 <= lo and hi <= total:
        raise ValueError(f"--frames {spec}: no frame (the end, {hi}, is not after the start, {lo}; B is exclusive)")
    if not 0 <= lo < hi <= total:
        raise ValueError(f"--frames {spec}: outside the {total} frames available (0:{total})")
    return range(lo, hi)
