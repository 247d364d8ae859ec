"""Fixtures for mocap_retarget tests: Anny's skeleton (names, parents, bind matrices in Doppel's frame)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def anny_skeleton():
    """(names, parents (J,), bind world matrices (J, 4, 4)) of the virtual actor's body (seed 0), feet on y = 0."""
    import torch

    from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL as C
    from doppel.virtual_actor import _anny_model, sample_parameters

    model = _anny_model()
    phenotype, _, _ = sample_parameters(0)
    with torch.no_grad():
        out = model(pose_parameters=None,
                    phenotype_kwargs={k: torch.tensor([v], dtype=torch.float64) for k, v in phenotype.items()})
    T = out["bone_poses"][0].numpy()
    verts = out["vertices"][0].numpy() @ C.T
    B = np.repeat(np.eye(4)[None], len(T), axis=0)
    B[:, :3, :3] = C @ T[:, :3, :3]
    B[:, :3, 3] = T[:, :3, 3] @ C.T
    B[:, 1, 3] -= verts[:, 1].min()
    return list(model.bone_labels), np.asarray(model.bone_parents, dtype=np.int64), B
