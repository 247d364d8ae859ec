"""Fixtures for mocap_retarget tests: Anny's skeleton (names, parents, bind matrices in Doppel's frame)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anny_body_model():
    """The body-model adapter (Anny, float64), built once per session."""
    import torch

    from reconstruction.body_models import AnnyModel

    return AnnyModel(dtype=torch.float64)


@pytest.fixture(scope="session")
def anny_skeleton(anny_body_model):
    """(names, parents (J,), bind world matrices (J, 4, 4)) of the virtual actor's body (seed 0), feet on y = 0,
    through `TargetSkeleton.from_body_model` (the one bone-matrix conversion)."""
    from doppel.virtual_actor import sample_parameters
    from mocap_retarget.skeleton import TargetSkeleton

    phenotype, _, _ = sample_parameters(0)
    sk = TargetSkeleton.from_body_model(anny_body_model, phenotype)
    return sk.names, sk.parents, sk.bind_world
