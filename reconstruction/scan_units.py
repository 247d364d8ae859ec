"""The length unit of a scan file. Doppel works in metres; scanners and photogrammetry tools also write
millimetres (Artec, 3dMD) or centimetres (Maya-scale exports). A scan read in the wrong unit is a person 1800 m
or 1.8 mm tall, and the registration then fails silently (mean distances of metres). ``detect_scan_units``
reads the unit from the scan's size, as ``mocap_retarget.bvh.detect_units`` does for a skeleton."""

from __future__ import annotations

import math

import numpy as np

from core.errors import DoppelError

SCAN_UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254}   # metres per file unit
AUTO_UNITS = ("m", "cm", "mm")     # inches are never guessed: 40-100 units reads as a child in cm
TYPICAL_SIZE_M = 1.7               # a standing adult's largest extent
PERSON_SIZE_M = (0.1, 10.0)        # smaller or larger in every unit: no scan of a person (with its floor)


class ScanUnitsError(DoppelError):
    """The scan's unit cannot be read from its size, or --units names no known unit."""


def scan_extent(vertices: np.ndarray) -> float:
    """The largest side of the axis-aligned bounding box of vertices (N, 3), in the file's units."""
    v = np.asarray(vertices, np.float64)
    return float((v.max(0) - v.min(0)).max())


def detect_scan_units(vertices: np.ndarray, what: str = "scan") -> tuple[str, float]:
    """(unit, largest extent in file units) of a scan's vertices (N, 3): of m, cm and mm, the unit that makes the
    scan's largest side closest to 1.7 m (log scale): below 17 units reads as metres, 17-537 as centimetres,
    above as millimetres. ScanUnitsError when even that unit makes it no person's size (0.1-10 m, a floor around
    them included)."""
    size = scan_extent(vertices)
    if not size > 0:
        raise ScanUnitsError(f"{what}: the scan has zero size; cannot read its units")
    unit = min(AUTO_UNITS, key=lambda u: abs(math.log(size * SCAN_UNIT_SCALES[u] / TYPICAL_SIZE_M)))
    metres = size * SCAN_UNIT_SCALES[unit]
    lo, hi = PERSON_SIZE_M
    if not lo <= metres <= hi:
        raise ScanUnitsError(f"{what}: the scan is {size:.4g} units across, a person's size in no unit "
                             f"({', '.join(AUTO_UNITS)}; {lo}-{hi} m); give --units")
    return unit, size


def scan_unit_scale(units: str, vertices: np.ndarray, what: str = "scan") -> tuple[str, float]:
    """(unit, metres per file unit) for ``units`` ('auto' or one of SCAN_UNIT_SCALES) and the scan's vertices
    (N, 3) in file units."""
    if units == "auto":
        units = detect_scan_units(vertices, what)[0]
    if units not in SCAN_UNIT_SCALES:
        raise ScanUnitsError(f"--units must be auto or one of {', '.join(SCAN_UNIT_SCALES)}, got {units!r}")
    return units, SCAN_UNIT_SCALES[units]
