"""`export_rig`: one entry point for every format."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.export.common import FORMATS, PRESETS, ExportError, ExportOptions, prepare_scene
from rigging.animation import Animation

log = logging.getLogger(__name__)

SUFFIXES = {"fbx": (".fbx",), "usd": (".usd",), "usda": (".usda",), "usdc": (".usdc", ".usd"),
            "usdz": (".usdz",), "glb": (".glb",), "abc": (".abc",)}


@dataclass(frozen=True)
class ExportResult:
    path: Path                 # the written file
    format: str                # fbx, usd, usda, usdc, usdz, glb, abc
    options: ExportOptions     # frame and units of the file
    bytes: int                 # file size
    seconds: float             # wall time of the export
    frames: int                # animation frames written (0 = bind pose only)


def default_options(fmt: str, preset: str | None = None, up: str | None = None,
                    units: str | None = None) -> ExportOptions:
    """The frame of an export: glTF is always Y-up metres (its specification), Alembic always Y-up (its convention;
    metres unless asked); USD defaults to Y-up metres, FBX to the Maya preset (Y-up, centimetres)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if fmt == "glb":
        if (up and up.lower() != "y") or (units and units.lower() != "m"):
            raise ValueError(f"--format glb: glTF 2.0 is Y-up in metres by specification (got up={up}, "
                             f"units={units})")
        if preset and PRESETS[preset] != ("y", "m"):
            log.warning("--preset %s (%s-up, %s) does not apply to glTF: the file is Y-up in metres by specification",
                        preset, *PRESETS[preset])
        return ExportOptions(up="y", units="m", preset=preset)
    default = ("y", "cm") if fmt == "fbx" else ("y", "m")
    options = ExportOptions.from_preset(preset, up, units, default=default)
    if fmt == "abc":
        from assets.export.alembic import check_alembic_options

        check_alembic_options(options)
    return options


def export_rig(rig, fmt: str, out: str | Path, anim: Animation | None = None,
               options: ExportOptions | None = None, texture: str | Path | None = None,
               provenance: dict[str, Any] | None = None, name: str = "doppel") -> ExportResult:
    """Export ``rig`` (a `rigging.Rig`, with an optional animation) to ``out`` in format ``fmt`` (see FORMATS).

    The file appears under its final name only when complete (atomic rename). Raises ExportError /
    ValueError / FileNotFoundError / PermissionError with one clear line for bad input."""
    from assets.export.common import check_output_path

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = check_output_path(out, SUFFIXES[fmt])
    options = options or default_options(fmt)
    t0 = time.perf_counter()
    if fmt == "fbx":
        from assets.export.fbx import blender_scene_options, export_fbx

        scene = prepare_scene(rig, anim, blender_scene_options(options), texture=texture, provenance=provenance,
                              name=name)
        export_fbx(scene, out, up=options.up)
        return _result(out, fmt, options, t0, scene.num_frames)
    if fmt == "abc":
        from assets.export.alembic import blender_scene_options as abc_scene_options
        from assets.export.alembic import export_alembic

        scene = prepare_scene(rig, anim, abc_scene_options(options), texture=None, provenance=provenance,
                              name=name)
        export_alembic(scene, out)
        return _result(out, fmt, options, t0, scene.num_frames)
    scene = prepare_scene(rig, anim, options, texture=texture, provenance=provenance, name=name)
    if fmt == "glb":
        from assets.export.gltf import export_glb

        export_glb(scene, out)
    else:
        from assets.export.usd import export_usd

        export_usd(scene, out)
    return _result(out, fmt, options, t0, scene.num_frames)


def _result(out: Path, fmt: str, options: ExportOptions, t0: float, frames: int) -> ExportResult:
    if not out.is_file():
        raise ExportError(f"{out}: export finished without writing the file")
    return ExportResult(path=out, format=fmt, options=options, bytes=out.stat().st_size,
                        seconds=round(time.perf_counter() - t0, 3), frames=frames)
