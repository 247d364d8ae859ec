"""`doppel rig`: build the rig (skeleton, skin weights, blendshapes) of a double and write it to a folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from doppel.commands.cli_output import cli_console
from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli
from doppel.doubles import (
    build_default_rig,
    check_preview_size,
    fitted_model_file,
    flame_embedding_for,
    parse_assignments,
    smplx_face_embedding_for,
)
from doppel.media_disclosure import LabelOpt, NoProvenanceOpt, discloser
from doppel.neural_inputs import adopt_uv_layout


def rig(
    out: Path = typer.Option(..., "--out", help="Output folder: rig.npz, manifest.json, preview.png."),
    model: str = typer.Option("anny", "--model", help="Body model: anny (default, needs no files), smplx, flame."),
    phenotype: list[str] = typer.Option([], "--phenotype", "--shape",
                                        help="KEY=VALUE shape parameter (repeatable). Anny: gender, age, muscle, "
                                             "weight, height, proportions in [0, 1]; SMPL-X/FLAME: beta_000 ..."),
    seed: int = typer.Option(0, "--seed", help="Seed of the default double's shape (same seed, same rig)."),
    anny_rig: str = typer.Option("default", "--anny-rig",
                                 help="Anny skeleton: default, mixamo, cmu_mb, game_engine, makehuman."),
    model_file: Path = typer.Option(None, "--model-file",
                                    help="SMPL-X / FLAME model file or folder (default: the --fit's, else "
                                         "$DOPPEL_MODELS_DIR)."),
    top_k: int = typer.Option(None, "--top-k", help="Keep the k largest skin weights per vertex (default: all)."),
    preview_size: int = typer.Option(384, "--preview-size", help="Height of each preview panel in pixels."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    fit_dir: Path = typer.Option(None, "--fit", help="A `doppel fit` output folder: use its model and shape."),
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
    texture: Path = typer.Option(None, "--texture", help="A `doppel texture` folder baked on the --fit: its albedo.png "
                                 "becomes the rig's texture (FBX / USD / glTF exports carry it)."),
    no_provenance: NoProvenanceOpt = False,
    label: LabelOpt = None,
) -> None:
    """Build the rig of a double (seeded default shape, --phenotype, or a `doppel fit` result from --fit) and
    write OUT/rig.npz, manifest.json, preview.png."""
    from core.meshio import write_png
    from core.stage_folders import check_stage_out, staged_stage_dir
    from rigging.preview import render_preview

    shape = parse_assignments(phenotype, "--phenotype")
    if fit_dir is not None:
        from reconstruction.scan_pipeline import read_fit_params

        fitted = read_fit_params(fit_dir)
        model, shape = fitted["model"], {**fitted["shape"], **shape}
        model_file = model_file or fitted_model_file(fit_dir)
    check_preview_size(preview_size)
    if texture is not None and fit_dir is None:
        raise ValueError("--texture needs --fit (the texture is baked on a fit's mesh)")
    gate_inputs = [p for p in (model_file, fit_dir, texture) if p is not None]
    check_stage_out(out, "rig", force, gate_inputs)      # before any slow work
    console = cli_console()
    # The likeness is the fit's and its baked texture's (none without --fit: the rig is then generated from the
    # model, the virtual actor); a texture of another actor than the fit's is refused as inputs of two actors.
    with gate_from_cli(workspace, actor, production, use="rig", command="rig", inputs=gate_inputs,
                       likeness=[p for p in (fit_dir, texture) if p is not None], outputs=[out]) as run, \
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        disclose = discloser(run, no_provenance, label)   # refuses --no-provenance for a real actor
        task = bar.add_task(f"rig: loading {model}", total=3)
        rig_obj, params, inputs = build_default_rig(model, shape, seed, anny_rig, model_file, top_k)
        if fit_dir is not None:
            adopt_uv_layout(rig_obj, fit_dir)      # the layout the fit's texture is baked on, when it keeps one
        bar.update(task, description="rig: rendering preview", completed=1)
        with staged_stage_dir(out, "rig", force, gate_inputs) as tmp:
            extra = {"preview": "preview.png", **_side_files(tmp, rig_obj, model, inputs, texture, fit_dir)}
            write_png(tmp / "preview.png", render_preview(rig_obj, size=preview_size))
            disclose(tmp / "preview.png")    # watermark + C2PA before the manifest hashes it
            bar.update(task, description="rig: saving", completed=2)
            consent = run.provenance
            rig_obj.save(tmp, extra_outputs=extra, inputs=inputs,
                         params={**params, "preview_size": preview_size, "actor_id": consent["actor"],
                                 "consent_id": consent["consent"], "production": consent["production"]})
        run.add_output(out, kind="rig")
        bar.update(task, description="rig: done", completed=3)
    console.print(f"rig: {rig_obj.num_joints} joints, {rig_obj.num_vertices} vertices, "
                  f"{len(rig_obj.blendshape_names)} blendshapes, {rig_obj.skin_indices.shape[1]} influences/vertex "
                  f"-> {out}")


def _side_files(tmp: Path, rig_obj, model: str, inputs: dict, texture: Path | None, fit_dir: Path | None
                ) -> dict[str, str]:
    """The files a rig folder carries beside rig.npz, copied into TMP: its albedo (--texture, or a scan fit's
    colour) and a FLAME rig's MediaPipe embedding (the face landmarks `doppel swap` tracks with)."""
    import shutil

    extra = {}
    if texture is not None:
        _copy_texture(texture, rig_obj, tmp)
        extra["albedo"] = "albedo.png"
    elif fit_dir is not None and (fit_dir / "albedo.png").is_file():   # a scan fit's colour (model UVs)
        shutil.copyfile(fit_dir / "albedo.png", tmp / "albedo.png")
        extra["albedo"] = "albedo.png"
    embedding = flame_embedding_for(model, inputs)
    if embedding is not None:
        shutil.copyfile(embedding, tmp / embedding.name)
        extra["face_landmarks"] = embedding.name
    smplx_face = smplx_face_embedding_for(model, rig_obj.num_vertices, inputs)
    if smplx_face is not None:
        from reconstruction.fitting.smplx_face import write_smplx_face_embedding  # torch: not at the CLI's start-up

        extra["face_landmarks"] = write_smplx_face_embedding(tmp, smplx_face).name
    return extra


def _copy_texture(texture: Path, rig_obj, tmp: Path) -> None:
    """TEXTURE/albedo.png -> TMP/albedo.png, after checking it was baked on the rig's topology and UVs."""
    import shutil

    from doppel.texture_stage import texture_for_rig

    shutil.copyfile(texture_for_rig(texture, rig_obj), tmp / "albedo.png")
