"""The demo's retarget stage on the virtual actor (quick mode): outputs and report section."""

from __future__ import annotations

import json


def test_demo_stage_retarget(tmp_path):
    from doppel.pipeline.demo import DemoContext
    from doppel.pipeline.demo_retarget import stage_retarget

    ctx = DemoContext(out=tmp_path, quick=True, seed=0)
    section = stage_retarget(ctx)
    d = tmp_path / "retarget"
    for f in ("clip_mixamo_apose_cm.bvh", "animation.npz", "retargeted.bvh", "metrics.json", "preview.png",
              "preview.mp4", "manifest.json"):
        assert (d / f).is_file(), f
    m = json.loads((d / "metrics.json").read_text())
    assert m["limb_cosine_mean"] >= 0.98
    assert m["skate_after_cleanup_cm_s"] <= m["skate_source_scaled_cm_s"] + 0.05
    assert section.title == "Mocap retarget" and section.images[0][0] == "retarget/preview.png"
    assert "units detected: cm" in section.table["clip"]
