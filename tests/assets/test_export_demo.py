"""The demo's export stage: three files listed in the report section, the USD round trip measured."""

from doppel.pipeline.demo import STAGES, DemoContext
from doppel.pipeline.demo_export import stage_export


def test_demo_export_stage(tmp_path, tiny_rig):
    assert ("export", stage_export) in STAGES
    ctx = DemoContext(out=tmp_path, quick=True)
    ctx.state["rig"] = tiny_rig
    section = stage_export(ctx)
    assert section.files == ["export/double.fbx", "export/double.usdz", "export/double.glb"]
    for f in section.files:
        assert (tmp_path / f).stat().st_size > 1000
    err_mm = float(section.table["USD round trip (UsdSkel.BakeSkinning vs Rig.pose), max error"].split()[0])
    assert err_mm < 1.0
    assert section.table["USD validation errors (.usdz)"] == 0
    assert set(ctx.state["exports"]) == {"fbx", "usdz", "glb"}
