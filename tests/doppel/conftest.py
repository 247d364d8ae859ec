"""Fixtures shared by the CLI tests in this folder."""

from __future__ import annotations

import pytest

from mocap_retarget.bvh import write_bvh
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


@pytest.fixture()
def clips(tmp_path):
    """(source clip, target skeleton): a 0.5 s Mixamo-named walk in cm and a 0.1 s Unreal-named one in inches."""
    clip = tmp_path / "clip.bvh"
    write_bvh(clip, synthetic_walk(WalkSpec(seconds=0.5, fps=30), names=SCHEMES["mixamo"], rest="A"), units="cm")
    target = tmp_path / "target.bvh"
    write_bvh(target, synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"], scale=1.1), units="inch")
    return clip, target


@pytest.fixture(scope="module")
def sphere_session(tmp_path_factory):
    """A tiny capture session of a textured sphere and its fit (`tests.doppel.sphere_double`)."""
    from tests.doppel.sphere_double import sphere_session

    return sphere_session(tmp_path_factory.mktemp("sphere"))


# --- the face swap's double (test_swap.py, test_swap_resume.py): built once per module --------------------------
@pytest.fixture(scope="module")
def rig_dir(tmp_path_factory):
    from doppel.doubles import build_default_rig

    rig, params, _ = build_default_rig("anny", seed=3)
    d = tmp_path_factory.mktemp("double") / "rig"
    rig.save(d, params=params)
    return d


@pytest.fixture(scope="module")
def double(rig_dir, tmp_path_factory):
    from doppel.face_swap.double import load_face_double

    return load_face_double(rig_dir, tmp_path_factory.mktemp("work"), albedo_size=256)
