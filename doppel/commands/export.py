"""`doppel export`: write a rig (and an animation) as FBX, USD or glTF for DCC tools."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core.leftovers import work_folder
from doppel.commands.cli_output import cli_console
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.doubles import albedo_for_rig
from doppel.media_disclosure import discloser

log = logging.getLogger(__name__)
FORMAT_HELP = "fbx, usd, usda, usdc, usdz, glb or abc"


def export(
    rig_dir: Path = typer.Argument(..., help="Rig folder (rig.npz + manifest.json), e.g. from `doppel rig`."),
    out: Path = typer.Option(..., "--out", help="Output file (.fbx, .usd/.usda/.usdc/.usdz, .glb, .abc)."),
    fmt: str = typer.Option(None, "--format", help=f"{FORMAT_HELP} (default: from the --out suffix)."),
    anim: Path = typer.Option(None, "--anim", help="Animation folder (animation.npz) or .npz file to bake in."),
    track: Path = typer.Option(None, "--track", help="A `doppel swap` output folder (or its tracks.npz): write its "
                                                     "plate camera and the double's head as the swap placed it, "
                                                     "per frame (.abc or .usd/.usda/.usdc)."),
    first_frame: int = typer.Option(None, "--first-frame", help="With --track: the file's frame number of the "
                                                                "plate's first frame (default: the plate frame + 1)."),
    preset: str = typer.Option(None, "--preset", help="maya (Y-up, cm), unreal (Z-up, cm), blender (Z-up, m)."),
    up: str = typer.Option(None, "--up", help="Up axis of the file: y or z (overrides the preset)."),
    units: str = typer.Option(None, "--units", help="Length unit of the file: cm or m (overrides the preset)."),
    texture: Path = typer.Option(None, "--texture", help="Albedo PNG (default: RIG_DIR/albedo.png, else a "
                                                         "procedural one painted on the rig's UVs)."),
    no_texture: bool = typer.Option(False, "--no-texture", help="Export without a material texture."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out file that is not an earlier Doppel export."),
) -> None:
    """Export RIG_DIR (with --anim) as FBX (Blender), USD (UsdSkel), glTF 2.0 binary or an Alembic geometry cache
    (the mesh baked at every frame, Y-up, no skeleton), provenance included. With --track, a face swap's plate
    camera and the double's head as the swap placed it (Alembic or USD), for a comp or a relight redone in 3D."""
    from assets.export.common import check_output_path
    from assets.export.existing_out import check_replaceable
    from assets.export.run import SUFFIXES, default_options
    from core.stage_folders import output_parent, sole_writer

    if track is not None or first_frame is not None:
        if fmt is not None and out.suffix.lower().lstrip(".") != fmt.lower():
            raise ValueError(f"--format {fmt} with --track: the --out suffix picks the format of a face track's "
                             "scene (.abc, .usd, .usda, .usdc); leave --format out")
        _export_track(rig_dir, track, out, anim, preset, up, units, first_frame, workspace, actor, production, force)
        return
    if fmt is None:
        fmt = next((f for f, sfx in SUFFIXES.items() if out.suffix.lower() in sfx), None)
        if fmt is None:
            raise ValueError(f"{out}: cannot tell the format from the suffix; give --format ({FORMAT_HELP})")
    fmt = fmt.lower()
    if fmt not in SUFFIXES:
        raise ValueError(f"--format must be one of {FORMAT_HELP}, got {fmt!r}")
    options = default_options(fmt, preset, up, units)
    other = next((f for f, sfx in SUFFIXES.items() if out.suffix.lower() in sfx), None)
    if out.suffix.lower() not in SUFFIXES[fmt] and other is not None:
        raise ValueError(f"--out {out} is a {other} file name, --format {fmt} writes {' or '.join(SUFFIXES[fmt])}: "
                         "leave --format out (the suffix picks the format) or give a matching name")
    with output_parent(out), sole_writer(out):   # two exports to one file: the later one is refused
        check_output_path(out, SUFFIXES[fmt])    # before any slow work
        check_replaceable(out, force)
        _export(rig_dir, out, fmt, anim, options, texture, no_texture, workspace, actor, production)


def _export(rig_dir: Path, out: Path, fmt: str, anim: Path | None, options, texture: Path | None, no_texture: bool,
            workspace, actor, production) -> None:
    """Export under the consent gate, with a progress bar (the CLI's options, checked)."""
    from assets.content_credentials import sidecar_path
    from assets.export import export_rig
    from assets.provenance import provenance_from_rig_dir
    from assets.signing_keys import workspace_id
    from rigging import Animation, Rig

    console = cli_console()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    # a --texture is a likeness too (a baked albedo is the actor's photographed skin): whose it is is decided with
    # the rig's, so another actor's texture cannot leave under the rig's consent
    looks = [rig_dir] + ([texture] if texture is not None and not no_texture else [])
    with gate_from_cli(workspace, actor, production, use="export", command="export",
                       inputs=looks + ([anim] if anim is not None else []), likeness=looks,
                       evidence=[anim] if anim is not None else [], outputs=[out]) as run, \
            Progress(*columns, console=console) as bar, work_folder(out, temp_default=True) as tmp:
        disclose = discloser(run, False, None, kind="model")      # signing identity checked before the work
        task = bar.add_task("export: loading rig", total=3)
        rig = Rig.load(rig_dir)
        animation = Animation.load(anim) if anim is not None else None
        bar.update(task, description="export: texture", completed=1)
        # an Alembic cache is geometry only: its texture travels beside it (the rig's albedo.png)
        tex = None if no_texture or fmt == "abc" else (texture or albedo_for_rig(rig, rig_dir, Path(tmp)))
        prov = provenance_from_rig_dir(rig_dir, actor_id=run.provenance["actor"],
                                       consent_ref=run.provenance["consent"],
                                       animation=None if animation is None else animation.source,
                                       production=run.provenance["production"],
                                       workspace=workspace_id(run.ws) if run.ws is not None else None)
        bar.update(task, description=f"export: writing {fmt}", completed=2)
        res = export_rig(rig, fmt, out, animation, options, texture=tex, provenance=prov.as_dict(),
                         name=rig_dir.resolve().name or "doppel")
        sidecar_path(out).unlink(missing_ok=True)        # an earlier export's credentials: they bind other bytes
        disclose(out)                                     # in a workspace: content credentials in OUT.c2pa
        run.add_output(out, kind="export")
        bar.update(task, description="export: done", completed=3)
    console.print(f"export: {res.format} ({res.options.up.upper()}-up, {res.options.units}), {res.frames} frames, "
                  f"{res.bytes / 1e6:.2f} MB in {res.seconds:.1f} s -> {res.path}")


def _export_track(rig_dir: Path, track: Path | None, out: Path, anim: Path | None, preset: str | None,
                  up: str | None, units: str | None, first_frame: int | None, workspace, actor, production,
                  force: bool) -> None:
    """`doppel export RIG_DIR --track SWAP_DIR --out FILE`: the options checked, then the scene written under the
    consent gate (the rig is the likeness; the track, the performer's performance, is evidence)."""
    from assets.content_credentials import sidecar_path
    from assets.export.common import check_output_path
    from assets.export.existing_out import check_replaceable
    from assets.provenance import provenance_from_rig_dir
    from assets.signing_keys import workspace_id
    from core.stage_folders import output_parent, sole_writer
    from doppel.face_swap.track_scene import TRACK_FORMATS
    from doppel.face_swap.track_scene_files import check_track_double, export_track

    if track is None:
        raise ValueError("--first-frame is for --track (a swap's face track)")
    if anim is not None:
        raise ValueError("--anim and --track are two different exports: a rig's animation, or a swap's face track")
    if (up or "y").lower() != "y" or preset in ("unreal", "blender"):
        raise ValueError("a face track is written Y-up (its camera looks down -Z, as Nuke, Maya and Houdini read "
                         "cameras): leave --up z and --preset unreal/blender out")
    units = (units or ("cm" if preset == "maya" else "m")).lower()
    if units not in ("m", "cm"):
        raise ValueError(f"--units must be cm or m, got {units!r}")
    check_track_double(rig_dir)
    console = cli_console()
    with output_parent(out), sole_writer(out):
        check_output_path(out, tuple(TRACK_FORMATS))
        check_replaceable(out, force)
        with gate_from_cli(workspace, actor, production, use="export", command="export", inputs=[rig_dir, track],
                           likeness=[rig_dir], evidence=[track], outputs=[out]) as run, \
                work_folder(out, temp_default=True) as tmp:
            disclose = discloser(run, False, None, kind="model")
            prov = provenance_from_rig_dir(rig_dir, actor_id=run.provenance["actor"],
                                           consent_ref=run.provenance["consent"], animation=str(track),
                                           production=run.provenance["production"],
                                           workspace=workspace_id(run.ws) if run.ws is not None else None)
            scene = export_track(rig_dir, track, out, Path(tmp), units, first_frame, prov.as_dict())
            sidecar_path(out).unlink(missing_ok=True)
            disclose(out)
            run.add_output(out, kind="export")
    gaps = scene.untracked_frames
    console.print(f"export: face track ({out.suffix.lstrip('.')}, Y-up, {units}): plate camera and the double's "
                  f"head, frames {scene.first_frame}-{scene.first_frame + len(scene.valid) - 1} at {scene.fps:g} "
                  f"fps{f'; no face tracked at {len(gaps)} frame(s), the solve bridged them' if gaps else ''} "
                  f"-> {out}", markup=False, highlight=False, soft_wrap=True)
