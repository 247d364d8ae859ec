"""take.html's choice of the frames to look at first (`doppel.take_report.flagged_frames`)."""

from doppel.take_report import chart, flagged_frames


def test_frames_flagged_by_views_and_by_error_against_the_median():
    frames = {"000": {"reprojection_px": 2.0, "views_seeing_person": 6},
              "001": {"reprojection_px": 2.2, "views_seeing_person": 6},
              "002": {"reprojection_px": None, "views_seeing_person": 0},
              "003": {"reprojection_px": 5.0, "views_seeing_person": 5},
              "004": {"reprojection_px": 2.1, "views_seeing_person": 6},
              "005": {"reprojection_px": 4.3, "views_seeing_person": 6}}
    why = flagged_frames(frames)
    assert list(why) == ["002", "003"]               # median 2.2 px: 5.0 is over twice it, 4.3 is not
    assert "seen by 0 view(s)" in why["002"] and "5.00 px" in why["003"]
    img = chart(frames)
    assert img.shape == (220, 900, 3) and (img != 255).any()
