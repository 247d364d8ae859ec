"""Exporters of rigged, animated doubles: FBX (Blender's bpy, in a worker process), USD (usd-core UsdSkel) and
glTF 2.0 binary (pygltflib). `export_rig` picks the writer from the format."""

from assets.export.common import (
    FORMATS,
    PRESETS,
    ExportAnimation,
    ExportError,
    ExportOptions,
    ExportScene,
    load_animation,
    prepare_scene,
    smooth_random_animation,
)
from assets.export.run import ExportResult, export_rig

__all__ = ["FORMATS", "PRESETS", "ExportAnimation", "ExportError", "ExportOptions", "ExportResult", "ExportScene",
           "export_rig", "load_animation", "prepare_scene", "smooth_random_animation"]
