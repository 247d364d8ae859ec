"""Photos of one moment told apart by their file names (capture.rig_moments)."""

from pathlib import Path

from capture.rig_moments import match_moments


def _files(names: dict[str, list[str]]) -> dict[str, dict[str, Path]]:
    return {cam: {n: Path(cam) / f"{n}.png" for n in ns} for cam, ns in names.items()}


def test_the_same_name_in_every_folder_is_one_moment():
    moments, rule = match_moments(_files({"cam00": ["000", "001"], "cam01": ["000", "001"]}))
    assert rule == "file name" and sorted(moments["cam01"]) == ["000", "001"]


def test_names_carrying_the_camera_and_card_clip_names():
    moments, rule = match_moments(_files({"CamA": ["CamA_0001", "CamA_0002"], "CamB": ["camb-0001", "camb-0002"]}))
    assert rule == "file name without the camera's name"
    assert moments["CamA"]["0001"].name == "CamA_0001.png" and moments["CamB"]["0002"].name == "camb-0002.png"
    moments, rule = match_moments(_files({"cam1": ["A001_C002_0001", "A001_C002_0002"],
                                          "cam2": ["B001_C007_001", "B001_C007_002"]}))
    assert rule == "frame number" and moments["cam2"]["2"].name == "B001_C007_002.png"


def test_a_rule_that_gives_a_camera_two_files_of_one_moment_is_not_used():
    """take1_0001 and take2_0001 in one folder: the frame number would make them one moment; the names stay."""
    files = _files({"cam0": ["take1_0001", "take2_0001"], "cam1": ["take1_0001", "take2_0001"]})
    moments, rule = match_moments(files)
    assert rule == "file name" and sorted(moments["cam0"]) == ["take1_0001", "take2_0001"]
    odd = _files({"cam0": ["x_0001", "y_0001"], "cam1": ["z_0001"]})
    assert match_moments(odd)[1] == "file name"            # nothing better: left as it was (the calibration says why)
