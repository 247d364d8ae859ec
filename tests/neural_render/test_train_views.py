"""Training views: crop centres made once, the views moved to the training device, the same crops and steps."""

import pytest
import torch

from neural_render.training import (
    TrainConfig,
    _crop_boxes,
    _supersample,
    train_neural_double,
    views_for_training,
)
from tests.neural_render.scenes import small_training_views


def _boxes_drawn_each_step(views, ids, crop, gen):
    """The crop corners as drawn before the centres were kept: the person or mesh pixels found every step."""
    H, W = views.masks.shape[1:]
    s = _supersample(views)
    out = []
    for i in ids.tolist():
        gm = views.g.mask[i] if s == 1 else views.g.mask[i].view(H, s, W, s).any(3).any(1)
        pts = ((views.masks[i] > 0.5) | gm).nonzero()
        y, x = pts[int(torch.randint(len(pts), (1,), generator=gen))].tolist()
        out.append((min(max(0, y - crop // 2), H - crop), min(max(0, x - crop // 2), W - crop)))
    return out


@pytest.mark.parametrize("supersample", [1, 2])
def test_crop_centres_made_once_draw_the_same_crops(supersample):
    _, views = small_training_views(supersample)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(20):
        ids = torch.randint(3, (2,), generator=torch.Generator().manual_seed(_))
        assert _crop_boxes(views, ids, 24, g1) == _boxes_drawn_each_step(views, ids, 24, g2)
    assert views.crop_centres is not None and all(c.device.type == "cpu" for c in views.crop_centres)


def test_views_move_whole_to_a_device_and_stay_on_the_cpu_for_cpu_training():
    _, views = small_training_views()
    moved = views.to("meta")
    tensors = [moved.images, moved.masks, moved.camera_index, moved.backgrounds,
               *(getattr(moved.g, k) for k in ("mask", "uv", "normal", "normal_cam", "view_dir", "depth"))]
    assert all(t.device.type == "meta" for t in tensors)
    assert [t.shape for t in tensors[:4]] == [views.images.shape, views.masks.shape, views.camera_index.shape,
                                              views.backgrounds.shape]
    assert moved.names == views.names
    per_view = views.images[0].nbytes + views.masks[0].nbytes + sum(
        getattr(views.g, k)[0].nbytes for k in ("mask", "uv", "normal", "normal_cam", "view_dir", "depth"))
    assert views.nbytes == 4 * per_view
    assert views_for_training(views, "cpu") is views


@pytest.mark.gpu
def test_views_moved_to_the_gpu_train_like_views_in_host_memory(monkeypatch):
    import neural_render.training as training

    cfg = TrainConfig(iterations=12, batch=2, crop=24, eval_every=6, patience=10)
    runs = {}
    for where, share in (("gpu", 0.5), ("host", 0.0)):
        monkeypatch.setattr(training, "views_for_training",
                            lambda v, d, share=share: views_for_training(v, d, share))
        m, views = small_training_views(seed=1)
        res = train_neural_double(m.to("cuda"), views, cfg, device="cuda")
        runs[where] = (res.history, m.texture.level0.detach().cpu())
    assert [h["loss"] for h in runs["gpu"][0]] == pytest.approx([h["loss"] for h in runs["host"][0]], rel=1e-2)
    assert torch.allclose(runs["gpu"][1], runs["host"][1], atol=1e-3)
