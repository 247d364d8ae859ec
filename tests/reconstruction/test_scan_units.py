"""A scan's length unit: read from its size (m, cm, mm), given by --units, carried to control points; a model fit
far from its scan is reported."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from reconstruction.scan_pairs import ScanPairsFile, pairs_correspondences
from reconstruction.scan_pipeline import far_from_scan
from reconstruction.scan_registration import load_scan
from reconstruction.scan_units import ScanUnitsError, detect_scan_units, scan_unit_scale


def _person_box(height_m: float) -> trimesh.Trimesh:
    return trimesh.creation.box((0.45 * height_m / 1.75, height_m, 0.3 * height_m / 1.75))


@pytest.mark.parametrize(("height_m", "unit", "scale"), [(1.8, "m", 1.0), (1.8, "cm", 100.0), (1.8, "mm", 1000.0),
                                                         (1.1, "cm", 100.0), (0.6, "mm", 1000.0), (2.3, "mm", 1000.0)])
def test_units_read_from_the_scans_size(height_m, unit, scale):
    v = _person_box(height_m).vertices * scale
    assert detect_scan_units(v) == (unit, pytest.approx(height_m * scale))


def test_no_unit_makes_it_a_person_and_explicit_units():
    with pytest.raises(ScanUnitsError, match="a person's size in no unit.*give --units"):
        detect_scan_units(_person_box(1.8).vertices * 1e6)           # 1.8 km in mm
    with pytest.raises(ScanUnitsError, match="zero size"):
        detect_scan_units(np.zeros((4, 3)))
    v = _person_box(1.8).vertices * 39.37                            # inches are never guessed (reads as cm) ...
    assert detect_scan_units(v)[0] == "cm"
    assert scan_unit_scale("inch", v) == ("inch", 0.0254)            # ... but can be given
    with pytest.raises(ScanUnitsError, match="--units must be auto or one of m, cm, mm, inch, got 'feet'"):
        scan_unit_scale("feet", v)


def test_a_millimetre_scan_loads_in_metres_and_its_control_points_too(tmp_path):
    m = _person_box(1.75).subdivide()
    mm = trimesh.Trimesh(m.vertices * 1000.0, m.faces, process=False)
    mm.export(tmp_path / "scan.ply")
    s = load_scan(tmp_path / "scan.ply")
    assert (s.units, s.unit_scale) == ("mm", 0.001)
    np.testing.assert_allclose(s.vertices, m.vertices, atol=1e-6)
    assert load_scan(tmp_path / "scan.ply", units="cm").vertices.max() == pytest.approx(m.vertices.max() * 10)

    class _Model:
        num_vertices = 10

    pairs = ScanPairsFile.model_validate({"schema": 1, "pairs": [
        {"scan_point": (mm.vertices[3]).tolist(), "model_vertex": 1}, {"scan_vertex": 5, "model_vertex": 2}]})
    c = pairs_correspondences(pairs, _Model(), s)
    np.testing.assert_allclose(c.targets, [m.vertices[3], m.vertices[5]], atol=1e-6)


def test_a_fit_far_from_its_scan_is_reported():
    class _Scan:
        units = "m"

    assert far_from_scan(np.full(100, 0.002), _Scan()) == []
    (w,) = far_from_scan(np.full(100, 0.4), _Scan())
    assert "400 mm from the scan" in w and "read as m; --units" in w
