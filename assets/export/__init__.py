"""Exporters of rigged, animated doubles: FBX (Blender's bpy, in a worker process), USD (usd-core UsdSkel) and
glTF 2.0 binary (pygltflib). `export_rig` picks the writer from the format. Animations are `rigging.Animation`."""

from assets.export.common import (
    FORMATS,
    PRESETS,
    ExportError,
    ExportOptions,
    ExportScene,
    prepare_scene,
    smooth_random_animation,
)
from assets.export.run import ExportResult, export_rig

__all__ = ["FORMATS", "PRESETS", "ExportError", "ExportOptions", "ExportResult", "ExportScene",
           "export_rig", "prepare_scene", "smooth_random_animation"]
