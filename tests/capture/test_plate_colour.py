"""Plate colour spaces through OpenColorIO, checked against the published transforms they implement."""

import numpy as np
import pytest

from capture.frame_files import linear_to_display, read_frame, write_frame
from capture.plate_colour import available_colorspaces, check_colorspace, from_working, to_working, working_space

AP1_TO_REC709 = np.array([[1.70505, -0.62179, -0.08326],      # ACEScg -> linear Rec.709 (Bradford, D60 -> D65)
                          [-0.13026, 1.14080, -0.01055],
                          [-0.02400, -0.12897, 1.15297]])


def _srgb_encode(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055) * 255.0


def test_the_studio_config_is_built_in_and_names_resolve():
    names = available_colorspaces()
    assert {"ACEScg", "ARRI LogC3 (EI800)", "ADX10", "Linear Rec.709 (sRGB)"} <= set(names)
    assert working_space() == "sRGB Encoded Rec.709 (sRGB)"
    assert check_colorspace("srgb_tx") == "sRGB Encoded Rec.709 (sRGB)"      # aliases and roles resolve
    assert check_colorspace("scene_linear") == "ACEScg"
    with pytest.raises(ValueError, match=r"no colour space 'ACES cg'.*closest: ACEScg"):
        check_colorspace("ACES cg")


def test_linear_rec709_through_ocio_is_the_exr_default_view():
    rng = np.random.default_rng(0)
    linear = rng.uniform(-0.1, 1.3, (4000, 3)).astype(np.float32)
    diff = np.abs(to_working(linear, "Linear Rec.709 (sRGB)").astype(int) - linear_to_display(linear).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_acescg_and_logc3_match_their_published_transforms():
    rng = np.random.default_rng(1)
    ap1 = rng.uniform(0.05, 0.6, (2000, 3)).astype(np.float32)
    want = _srgb_encode(ap1 @ AP1_TO_REC709.T)
    inside = np.all((ap1 @ AP1_TO_REC709.T > 0.001) & (ap1 @ AP1_TO_REC709.T < 0.999), axis=1)
    got = to_working(ap1, "ACEScg").astype(float)
    assert inside.mean() > 0.5 and np.abs(got[inside] - want[inside]).max() <= 1.0
    # ARRI LogC3 at EI 800: 18 % grey is code 0.391 (ARRI's white paper); grey is grey in any gamut
    grey = to_working(np.full((1, 3), 0.3910, np.float32), "ARRI LogC3 (EI800)")[0]
    assert np.abs(grey.astype(float) - _srgb_encode(0.18)).max() <= 1.0


def test_8_bit_values_go_back_and_forth_unchanged():
    levels = np.random.default_rng(2).integers(0, 256, (5000, 3)).astype(np.uint8)
    for space in ("ACEScg", "ARRI LogC3 (EI800)", "Linear Rec.2020"):
        assert np.array_equal(to_working(from_working(levels, space), space), levels), space


def test_an_acescg_exr_is_viewed_in_srgb_and_the_face_goes_back_in_acescg(tmp_path):
    import OpenEXR

    rng = np.random.default_rng(3)
    ap1 = rng.uniform(0.02, 0.8, (48, 64, 3)).astype(np.float32)
    src = tmp_path / "sh.1001.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {c: ap1[..., k].copy() for k, c in enumerate("RGB")}) as f:
        f.write(str(src))
    view = read_frame(src, "ACEScg")
    assert np.array_equal(view, to_working(ap1, "ACEScg"))
    assert not np.array_equal(view, read_frame(src))                   # read as linear Rec.709 it is another image
    face = view.copy()
    face[8:20, 10:30] = (200, 120, 90)
    write_frame(tmp_path / "out.exr", face, src, "ACEScg")
    with OpenEXR.File(str(tmp_path / "out.exr"), separate_channels=True) as f:
        got = np.stack([np.asarray(f.channels()[c].pixels) for c in "RGB"], -1)
    inside = np.zeros((48, 64), bool)
    inside[8:20, 10:30] = True
    assert np.array_equal(got[~inside], ap1[~inside])
    assert np.allclose(got[inside], from_working(np.array([[200, 120, 90]], np.uint8), "ACEScg"), atol=1e-6)
    assert np.array_equal(read_frame(tmp_path / "out.exr", "ACEScg"), face)


def test_a_facility_config_named_by_ocio_is_used_and_one_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    import PyOpenColorIO as ocio

    facility = tmp_path / "facility.ocio"               # a config file of another shape: the ACES CG config
    cg = ocio.Config.CreateFromFile("ocio://cg-config-latest")
    facility.write_text(cg.serialize())
    monkeypatch.setenv("OCIO", str(facility))
    assert available_colorspaces() == [c.getName() for c in cg.getColorSpaces()]
    assert "ARRI LogC3 (EI800)" not in available_colorspaces()          # the studio config's, not this one's
    assert to_working(np.full((1, 3), 0.18, np.float32), "ACEScg")[0].tolist() == [118, 118, 118]
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(ValueError, match=r"OCIO config '.*missing.ocio' could not be read.*\$OCIO"):
        check_colorspace("ACEScg")


def test_code_values_and_half_floats_go_through_ocio_as_their_floats_do():
    """Integer code values (16-bit: 0..65535 is 0..1) and half floats are converted by OCIO's integer and half
    paths (no float copy of the frame): within one level of the float path, rarely off."""
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 65536, (20000, 3)).astype(np.uint16)
    for space in ("ARRI LogC3 (EI800)", "ACEScg"):
        d = np.abs(to_working(codes, space).astype(int) - to_working(codes / np.float32(65535), space).astype(int))
        assert d.max() <= 1 and (d > 0).mean() < 0.001, space
    half = rng.uniform(0, 1.5, (20000, 3)).astype(np.float16)
    assert np.array_equal(to_working(half, "ACEScg"), to_working(half.astype(np.float32), "ACEScg"))
    assert to_working(np.array([[np.nan, 0.5, 2.0]], np.float32), "Linear Rec.709 (sRGB)")[0].tolist() == [0, 188, 255]


def test_an_exr_plate_is_read_in_the_colour_space_its_header_declares(tmp_path, caplog):
    """ACES container EXRs (AP0 chromaticities), a colorInteropID, Rec.709 primaries, unknown primaries, and a
    colour space given over the header's."""
    import OpenEXR

    from capture.plate_io import probe_plate

    ap0 = OpenEXR.colorInteropIDToChromaticities("lin_ap0_scene")
    cases = {"aces": ({"chromaticities": ap0, "acesImageContainerFlag": 1}, "ACES2065-1"),
             "interop": ({"colorInteropID": "lin_ap1_scene"}, "ACEScg"),
             "rec709": ({"chromaticities": OpenEXR.colorInteropIDToChromaticities("lin_rec709_scene")}, None),
             "odd": ({"chromaticities": (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.314, 0.351)}, None),   # DCI-P3
             "none": ({}, None)}
    for name, (attrs, want) in cases.items():
        (tmp_path / name).mkdir()
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **attrs}
        with OpenEXR.File(header, {"RGB": np.full((64, 64, 3), 0.18, np.float16)}) as f:
            f.write(str(tmp_path / name / "sh.1001.exr"))
        caplog.clear()
        assert probe_plate(tmp_path / name).colorspace == want, name
        assert ("not a known linear space" in caplog.text) == (name == "odd"), caplog.text
    assert probe_plate(tmp_path / "aces", colorspace="ACEScg").colorspace == "ACEScg"     # given: taken
