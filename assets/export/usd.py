"""USD export with usd-core (UsdSkel): a SkelRoot holding the Skeleton (joints, bind and rest transforms), a
SkelAnimation (translations, rotations, scales and blend-shape weights over time), the skinned Mesh with
SkelBindingAPI (joint indices and weights), its BlendShapes, and a UsdPreviewSurface material with the albedo
texture. Stage metadata: upAxis, metersPerUnit, fps; the provenance goes into the root layer's customLayerData.

.usda (text), .usdc / .usd (crate) and .usdz (a package with the texture inside). For .usda / .usdc the texture is
copied beside the file as ``<stem>.albedo.png`` and referenced by relative path.

Joint names become USD path tokens: characters that are not [A-Za-z0-9_] become "_" (``pelvis.L`` ->
``pelvis_L``); the original names are kept in the Skeleton's customData ``doppel:jointNames``.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from assets.export.common import ExportError, ExportScene, check_output_path, staged_output

log = logging.getLogger(__name__)


def usd_identifiers(names: list[str]) -> list[str]:
    """Valid, unique USD prim names for ``names`` (the rest replaced by "_", a leading digit prefixed)."""
    out, seen = [], set()
    for n in names:
        s = re.sub(r"[^A-Za-z0-9_]", "_", n) or "_"
        if s[0].isdigit():
            s = "_" + s
        base, k = s, 1
        while s in seen:
            s, k = f"{base}_{k}", k + 1
        seen.add(s)
        out.append(s)
    return out


def joint_paths(scene: ExportScene) -> list[str]:
    """UsdSkel joint tokens ("root/pelvis_L/...") in joint order."""
    ids = usd_identifiers(scene.joint_names)
    paths: list[str] = []
    for j, p in enumerate(scene.parents):
        paths.append(ids[j] if p < 0 else f"{paths[p]}/{ids[j]}")
    return paths


def export_usd(scene: ExportScene, out: str | Path) -> Path:
    """Write ``scene`` to ``out`` (.usda, .usdc, .usd or .usdz; atomic). Returns the path."""
    out = check_output_path(out, (".usda", ".usdc", ".usd", ".usdz"))
    if out.suffix.lower() == ".usdz":
        from pxr import UsdUtils

        # the layer and texture made inside the staged write: its error handling (a full disk named as such) covers
        # them too (a full disk there was an "internal error" quoting USD's C++)
        with tempfile.TemporaryDirectory(prefix="doppel_usdz_") as tmp, staged_output(out) as staged:
            layer = Path(tmp) / f"{out.stem}.usdc"
            _write_stage(scene, layer, texture_dir=Path(tmp))
            staged.unlink()
            if not UsdUtils.CreateNewUsdzPackage(str(layer), str(staged)):
                raise ExportError(f"{out}: UsdUtils.CreateNewUsdzPackage failed")
        return out
    tex_dir = out.parent
    with staged_output(out) as staged:
        staged.unlink()
        _write_stage(scene, staged, texture_dir=tex_dir, texture_stem=out.stem)
    return out


def _write_stage(scene: ExportScene, path: Path, texture_dir: Path, texture_stem: str | None = None) -> None:
    """Write ``scene`` as a new USD layer at ``path``: SkelRoot, Skeleton, skinned Mesh, BlendShapes,
    SkelAnimation and a UsdPreviewSurface material (texture copied into ``texture_dir``)."""
    from pxr import Usd, UsdSkel

    stage = Usd.Stage.CreateNew(str(path))
    root_name = _stage_metadata(stage, scene)
    skel, paths = _write_skeleton(stage, scene, root_name)
    mesh = _write_mesh(stage, scene, root_name)
    binding = _bind_skin(mesh, scene, skel)
    bs_ids = _write_blendshapes(stage, scene, mesh, binding)
    if scene.num_frames:
        anim = _write_animation(stage, scene, root_name, paths, bs_ids)
        UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets([anim.GetPath()])
    if scene.texture is not None:
        _write_material(stage, scene, root_name, mesh, texture_dir, texture_stem)
    stage.GetRootLayer().Save()


def _stage_metadata(stage, scene: ExportScene) -> str:
    """Up axis, metres per unit, the SkelRoot (default prim) and the provenance; returns the root prim's name."""
    from pxr import Usd, UsdGeom, UsdSkel

    opts = scene.options
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if opts.up == "y" else UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0 if opts.units == "m" else 0.01)
    root_name = usd_identifiers([scene.name])[0]
    root = UsdSkel.Root.Define(stage, f"/{root_name}")
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root.GetPrim()).SetKind("component")
    layer_data = {"doppel": {k: str(v) for k, v in scene.provenance.items()},
                  "doppel:frame": f"up={opts.up}, units={opts.units}, preset={opts.preset or ''}"}
    stage.GetRootLayer().customLayerData = layer_data
    stage.GetRootLayer().documentation = "Doppel digital double (rig, skin, blendshapes, animation)"
    return root_name


def _write_skeleton(stage, scene: ExportScene, root_name: str):
    """The Skeleton (joint paths, names, bind and rest transforms); returns (skeleton, joint paths)."""
    from pxr import UsdSkel, Vt

    paths = joint_paths(scene)
    skel = UsdSkel.Skeleton.Define(stage, f"/{root_name}/Skeleton")
    skel.CreateJointsAttr(Vt.TokenArray(paths))
    skel.CreateJointNamesAttr(Vt.TokenArray(scene.joint_names))
    skel.CreateBindTransformsAttr(Vt.Matrix4dArray.FromNumpy(np.ascontiguousarray(scene.bind.transpose(0, 2, 1))))
    L = scene.local_bind()
    skel.CreateRestTransformsAttr(Vt.Matrix4dArray.FromNumpy(np.ascontiguousarray(L.transpose(0, 2, 1))))
    skel.GetPrim().SetCustomDataByKey("doppel:jointNames", Vt.StringArray(scene.joint_names))
    return skel, paths


def _write_mesh(stage, scene: ExportScene, root_name: str):
    """The body Mesh: points, triangles, vertex normals, extent, face-varying UVs (primvar st)."""
    from pxr import Gf, Sdf, UsdGeom, Vt

    mesh = UsdGeom.Mesh.Define(stage, f"/{root_name}/Body")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(scene.vertices.astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(scene.faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(scene.faces.reshape(-1).astype(np.int32)))
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(scene.normals.astype(np.float32)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    lo, hi = scene.vertices.min(0), scene.vertices.max(0)
    pad = 0.5 * (hi - lo)                     # the posed body stays inside the rest box grown by half its size
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*(lo - pad)), Gf.Vec3f(*(hi + pad))]))
    if scene.uvs is not None:
        st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                     UsdGeom.Tokens.faceVarying)
        st.Set(Vt.Vec2fArray.FromNumpy(scene.uvs.astype(np.float32)))
        st.SetIndices(Vt.IntArray.FromNumpy(scene.face_uvs.reshape(-1).astype(np.int32)))
    return mesh


def _bind_skin(mesh, scene: ExportScene, skel):
    """Joint indices and weights (vertex primvars) and the skeleton binding of the mesh; returns the BindingAPI."""
    from pxr import Gf, UsdSkel, Vt

    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    K = scene.skin_indices.shape[1]
    binding.CreateJointIndicesPrimvar(False, K).Set(Vt.IntArray.FromNumpy(
        scene.skin_indices.reshape(-1).astype(np.int32)))
    binding.CreateJointWeightsPrimvar(False, K).Set(Vt.FloatArray.FromNumpy(
        scene.skin_weights.reshape(-1).astype(np.float32)))
    binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))
    binding.CreateSkeletonRel().SetTargets([skel.GetPath()])
    return binding


def _write_blendshapes(stage, scene: ExportScene, mesh, binding) -> list[str]:
    """Sparse BlendShapes (only the vertices a shape moves) under the mesh; returns their identifiers ([] if
    none)."""
    from pxr import UsdSkel, Vt

    bs_ids = usd_identifiers(scene.blendshape_names)
    targets = []
    for name, delta in zip(bs_ids, scene.blendshape_deltas, strict=True):
        moved = np.flatnonzero(np.abs(delta).max(1) > 0)
        if not len(moved):
            moved = np.array([0])
        shape = UsdSkel.BlendShape.Define(stage, mesh.GetPath().AppendChild(name))
        shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(delta[moved].astype(np.float32)))
        shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(moved.astype(np.int32)))
        targets.append(shape.GetPath())
    if targets:
        binding.CreateBlendShapesAttr(Vt.TokenArray(bs_ids))
        binding.CreateBlendShapeTargetsRel().SetTargets(targets)
    return bs_ids if targets else []


def _write_animation(stage, scene: ExportScene, root_name: str, paths: list[str], bs_ids: list[str]):
    """The SkelAnimation (time codes 0..T-1 at the scene's exact rate): joint translations, rotations, unit
    scales and blend-shape weights per frame."""
    from pxr import Usd, UsdSkel, Vt

    T, J = scene.num_frames, len(scene.joint_names)
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(T - 1)
    stage.SetTimeCodesPerSecond(scene.fps)
    stage.SetFramesPerSecond(scene.fps)
    anim = UsdSkel.Animation.Define(stage, f"/{root_name}/Skeleton/Animation")
    anim.CreateJointsAttr(Vt.TokenArray(paths))
    q, trans = scene.local_quaternions()
    q = q.astype(np.float32)                                      # (T, J, 4) xyzw = GfQuatf memory order
    ta, ra = anim.CreateTranslationsAttr(), anim.CreateRotationsAttr()
    anim.CreateScalesAttr().Set(Vt.Vec3hArray.FromNumpy(np.ones((J, 3), np.float16)))
    wa = None
    if bs_ids:
        anim.CreateBlendShapesAttr(Vt.TokenArray(bs_ids))
        wa = anim.CreateBlendShapeWeightsAttr()
        wts = np.zeros((T, len(bs_ids))) if scene.blendshape_weights is None else scene.blendshape_weights
    for f in range(T):
        tc = Usd.TimeCode(f)
        ta.Set(Vt.Vec3fArray.FromNumpy(trans[f].astype(np.float32)), tc)
        ra.Set(Vt.QuatfArray.FromNumpy(np.ascontiguousarray(q[f])), tc)
        if wa is not None:
            wa.Set(Vt.FloatArray.FromNumpy(wts[f].astype(np.float32)), tc)
    return anim


def _write_material(stage, scene: ExportScene, root_name: str, mesh, texture_dir: Path,
                    texture_stem: str | None) -> None:
    """A UsdPreviewSurface reading the albedo texture (copied beside the file) through the st primvar."""
    from pxr import Sdf, UsdShade

    suffix = scene.texture.suffix.lower()
    tex_name = f"{texture_stem}.albedo{suffix}" if texture_stem else f"albedo{suffix}"
    tex_path = texture_dir / tex_name
    if tex_path.resolve() != scene.texture.resolve():
        with staged_output(tex_path) as staged:
            staged.write_bytes(scene.texture.read_bytes())
    mat = UsdShade.Material.Define(stage, f"/{root_name}/Materials/Skin")
    surf = UsdShade.Shader.Define(stage, mat.GetPath().AppendChild("PreviewSurface"))
    surf.CreateIdAttr("UsdPreviewSurface")
    surf.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.6)
    surf.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    reader = UsdShade.Shader.Define(stage, mat.GetPath().AppendChild("stReader"))
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
    tex = UsdShade.Shader.Define(stage, mat.GetPath().AppendChild("AlbedoTexture"))
    tex.CreateIdAttr("UsdUVTexture")
    tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"./{tex_name}")
    tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surf.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(tex.ConnectableAPI(), "rgb")
    mat.CreateSurfaceOutput().ConnectToSource(surf.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(mat)


def usd_skinned_points(path: str | Path, frames: list[int]) -> np.ndarray:
    """Skin the file's mesh with USD's own UsdSkel (UsdSkel.BakeSkinning on an in-memory copy of the stage) and
    return (len(frames), V, 3) points at those time codes, in the file's units and frame."""
    from pxr import Usd, UsdGeom, UsdSkel

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise ExportError(f"{path}: USD could not open the file")
    session = stage.GetSessionLayer()
    # the baked samples go to the session layer: give it the file's time codes per second, or USD rescales time
    session.timeCodesPerSecond = stage.GetRootLayer().timeCodesPerSecond
    session.framesPerSecond = stage.GetRootLayer().framesPerSecond
    stage.SetEditTarget(session)
    if not UsdSkel.BakeSkinning(stage.Traverse()):
        raise ExportError(f"{path}: UsdSkel.BakeSkinning failed")
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    if len(meshes) != 1:
        raise ExportError(f"{path}: expected one mesh, found {len(meshes)}")
    pts = meshes[0].GetPointsAttr()
    return np.stack([np.asarray(pts.Get(Usd.TimeCode(f)), dtype=np.float64) for f in frames])


def usd_compliance_errors(path: str | Path) -> list[str]:
    """Compliance problems of ``path``; [] when compliant. usd-core < 26 has UsdUtils.ComplianceChecker (used when
    present); 26.x replaced it with the UsdValidation framework (what ``usdchecker`` runs), whose every registered
    validator (stage metadata, skel binding, material binding, shader Sdr compliance, usdz package rules, ...)
    is run here. Warnings are not errors."""
    from pxr import Usd, UsdUtils

    if hasattr(UsdUtils, "ComplianceChecker"):
        checker = UsdUtils.ComplianceChecker()
        checker.CheckCompliance(str(path))
        return list(checker.GetErrors()) + list(checker.GetFailedChecks())
    from pxr import UsdValidation

    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    stage = Usd.Stage.Open(str(path))
    if stage is None:
        return [f"{path}: USD could not open the file"]
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    return [f"{e.GetName()}: {e.GetMessage()}" for e in errors
            if e.GetType() in (UsdValidation.ValidationErrorType.Error,)]
