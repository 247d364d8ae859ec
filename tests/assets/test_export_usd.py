"""USD export: UsdSkel skinning (USD's own) vs Rig.pose, stage metadata, provenance, validation, packaging."""

import numpy as np
import pytest

from assets.export import export_rig
from assets.export.common import reference_vertices, to_doppel
from assets.export.run import default_options
from assets.export.usd import usd_compliance_errors, usd_identifiers, usd_skinned_points

TOL_M = 1e-5
PROV = {"actor_id": "actor-42", "consent_ref": "consent-7", "doppel_version": "0.1.0"}


@pytest.mark.parametrize("fmt, suffix, preset", [("usda", ".usda", None), ("usdc", ".usdc", "unreal"),
                                                 ("usdz", ".usdz", "maya")])
def test_usd_skinning_matches_rig_pose(tmp_path, tiny_rig, tiny_anim, texture_png, fmt, suffix, preset):
    from pxr import Usd, UsdGeom

    opts = default_options(fmt, preset)
    out = tmp_path / f"double{suffix}"
    res = export_rig(tiny_rig, fmt, out, tiny_anim, opts, texture=texture_png, provenance=PROV)
    assert res.path == out and out.is_file()
    frames = [0, 6, 11]
    got = to_doppel(usd_skinned_points(out, frames), opts)
    ref = reference_vertices(tiny_rig, tiny_anim, frames)
    assert np.abs(got - ref).max() < TOL_M
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == opts.up.upper()
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01 if opts.units == "cm" else 1.0)
    assert stage.GetTimeCodesPerSecond() == tiny_anim.fps and stage.GetEndTimeCode() == 11
    prov = stage.GetRootLayer().customLayerData["doppel"]
    assert prov["actor_id"] == "actor-42" and prov["consent_ref"] == "consent-7"
    assert usd_compliance_errors(out) == []
    skel = next(p for p in stage.Traverse() if p.GetTypeName() == "Skeleton")
    assert list(skel.GetCustomDataByKey("doppel:jointNames")) == tiny_rig.joint_names
    if fmt != "usdz":
        assert (tmp_path / "double.albedo.png").is_file()   # referenced beside the layer
    else:
        from pxr import Sdf

        assert sorted(p.name for p in tmp_path.iterdir()) == ["double.usdz"]
        layer = Sdf.Layer.FindOrOpen(str(out))
        assert layer is not None and "albedo.png" in layer.ExportToString()


def test_usd_blendshapes_and_binding(tmp_path, tiny_rig, tiny_anim):
    from pxr import Usd, UsdSkel

    out = export_rig(tiny_rig, "usda", tmp_path / "d.usda", tiny_anim).path
    stage = Usd.Stage.Open(str(out))
    mesh = next(p for p in stage.Traverse() if p.GetTypeName() == "Mesh")
    binding = UsdSkel.BindingAPI(mesh)
    assert list(binding.GetBlendShapesAttr().Get()) == ["puff", "wave"]
    assert binding.GetJointIndicesPrimvar().GetElementSize() == 5
    anim = next(p for p in stage.Traverse() if p.GetTypeName() == "SkelAnimation")
    w = UsdSkel.Animation(anim).GetBlendShapeWeightsAttr()
    np.testing.assert_allclose(np.array(w.Get(6)), tiny_anim.blendshape_weights[6], atol=1e-6)
    # the sparse "puff" shape lists only the vertices it moves
    puff = UsdSkel.BlendShape(stage.GetPrimAtPath(mesh.GetPath().AppendChild("puff")))
    assert 0 < len(puff.GetPointIndicesAttr().Get()) < tiny_rig.num_vertices


def test_validation_catches_a_broken_file(tmp_path):
    """The compliance check can fail: a mesh with skin primvars but no SkelBindingAPI and no stage metadata."""
    from pxr import Sdf, Usd, UsdGeom

    p = tmp_path / "bad.usda"
    stage = Usd.Stage.CreateNew(str(p))
    m = UsdGeom.Mesh.Define(stage, "/M")
    m.GetPrim().CreateAttribute("primvars:skel:jointIndices", Sdf.ValueTypeNames.IntArray).Set([0])
    stage.Save()
    errors = usd_compliance_errors(p)
    assert any("SkelBindingAPI" in e for e in errors) and any("upAxis" in e for e in errors)


def test_usd_identifiers():
    assert usd_identifiers(["pelvis.L", "pelvis_L", "3d", "neck-head"]) == ["pelvis_L", "pelvis_L_1", "_3d",
                                                                           "neck_head"]


def test_usd_failed_write_leaves_nothing(tmp_path, tiny_rig, monkeypatch):
    import assets.export.usd as usd

    def boom(*a, **k):
        raise RuntimeError("disk full")

    (tmp_path / "d.usda").write_text("#usda 1.0\n")            # an earlier export stays as it was
    monkeypatch.setattr(usd, "_write_stage", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_rig(tiny_rig, "usda", tmp_path / "d.usda")
    with pytest.raises(RuntimeError, match="disk full"):
        export_rig(tiny_rig, "usdz", tmp_path / "d.usdz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.usda"]
    assert (tmp_path / "d.usda").read_text() == "#usda 1.0\n"


@pytest.mark.parametrize("fmt", ["usda", "usdz"])
def test_a_full_disk_under_usd_is_named_as_such(tmp_path, tiny_rig, monkeypatch, fmt):
    """USD reports a full disk as its own error quoting the OS's words; for a .usdz the layer and texture are made
    before the package and that error came out as an internal error; now either is the full disk, naming OUT."""
    import errno

    import assets.export.usd as usd

    def full(*a, **k):          # what pxr.Tf.ErrorException says when ArFilesystemWritableAsset::Write fails
        raise RuntimeError("Error in 'ArFilesystemWritableAsset::Write': 'Error occurred writing file: "
                           "No space left on device'")

    monkeypatch.setattr(usd, "_write_stage", full)
    with pytest.raises(OSError) as e:
        export_rig(tiny_rig, fmt, tmp_path / f"d.{fmt}")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / f"d.{fmt}")
    assert list(tmp_path.iterdir()) == []
