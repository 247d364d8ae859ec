"""`doppel texture`: bake the capture's photos into the fitted mesh's UV space (the CGI double's texture)."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.commands.cli_output import cli_console, stage_bar
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli


def texture(
    session: Path = typer.Argument(..., help="Capture session folder (images/ + calibration.json)."),
    fit_dir: Path = typer.Option(..., "--fit", help="The session's `doppel fit` output folder."),
    out: Path = typer.Option(..., "--out", help="Output folder: albedo.png, albedo.exr, coverage.png, manifest.json."),
    size: int = typer.Option(2048, "--size", help="Texture size in texels: 2048 or 4096 (also 256-1024)."),
    masks: Path = typer.Option(None, "--masks", help="Person masks: an ingest folder (its masks/) or a folder of "
                               "CAMERA.png; default: keyed against the backdrop colour."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
) -> None:
    """Bake every calibrated photo onto the fitted mesh (visibility, frontal/close/sharp weighting, seam-aware
    blending, inpainting of unseen texels); writes OUT/albedo.png (+ EXR), coverage.png, manifest.json."""
    from capture.session import check_session_argument
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.texture_stage import TEXTURE_STAGE, bake_session, check_texture_size

    session = check_session_argument(session)
    check_texture_size(size)
    inputs = [p for p in (session, fit_dir, masks) if p is not None]
    check_stage_out(out, TEXTURE_STAGE, force, inputs)
    console = cli_console()
    with gate_from_cli(workspace, actor, production, use="fit", command="texture", inputs=inputs,
                       outputs=[out]) as run, \
            stage_bar(console) as bar:
        task = bar.add_task("texture: loading session and fit", total=None)
        prov = run.manifest_params
        with staged_stage_dir(out, TEXTURE_STAGE, force, inputs) as tmp:
            m = bake_session(session, fit_dir, tmp, size, masks, params=prov,
                             progress=lambda i, n: bar.update(task, description="texture: baking views", completed=i,
                                                              total=n))
        run.add_output(out, kind="texture")
    console.print(f"texture: {m['size']}x{m['size']} from {m['views']} views, "
                  f"{100 * m['seen_fraction_of_islands']:.1f}% of the UV islands seen (rest inpainted) -> {out}",
                  markup=False, highlight=False)
