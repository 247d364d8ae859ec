import pytest
import torch

from reconstruction.body_models import AnnyModel

PHENOTYPE = {"gender": 0.3, "age": 0.6, "muscle": 0.7, "weight": 0.4, "height": 0.55, "proportions": 0.45}


@pytest.fixture(scope="session")
def anny_model():
    """AnnyModel in float64 (one per test session; anny's cache makes it < 1 s)."""
    return AnnyModel(dtype=torch.float64)


@pytest.fixture(scope="session")
def anny_rig(anny_model):
    from rigging import Rig

    return Rig.from_body_model(anny_model, PHENOTYPE, feet_on_floor=False)   # the model's frame: parity with it
