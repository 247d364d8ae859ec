"""`doppel rig`: build the rig (skeleton, skin weights, blendshapes) of a double and write it to a folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from doppel.consent_gate import ActorOpt, ProductionOpt, WorkspaceOpt, gate_from_cli

MODELS = ("anny", "smplx", "flame")


def parse_assignments(items: list[str], what: str) -> dict[str, float]:
    """["age=0.4", "height=0.7"] -> {"age": 0.4, "height": 0.7}; ValueError naming the bad item."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{what}: {key.strip()!r} needs a number, got {value!r}") from None
    return out


def build_default_rig(model: str = "anny", phenotype: dict[str, float] | None = None, seed: int = 0,
                      anny_rig: str = "default", model_file: Path | None = None, top_k: int | None = None):
    """(rig, params, inputs): the rig of a default double until fitting exists. Anny: the virtual actor's
    seeded phenotype, overridden by ``phenotype``; SMPL-X / FLAME: seeded betas (N(0, 0.5)), overridden too."""
    import numpy as np

    from rigging import Rig

    phenotype = dict(phenotype or {})
    inputs: dict[str, Path] = {}
    if model == "anny":
        from doppel.virtual_actor import sample_parameters
        from reconstruction.body_models import AnnyModel

        body = AnnyModel(rig=anny_rig)
        shape = {**sample_parameters(seed)[0], **phenotype}
    elif model in ("smplx", "flame"):
        from reconstruction.body_models import FLAMEModel, SMPLXModel

        body = (SMPLXModel if model == "smplx" else FLAMEModel)(model_file)
        inputs["model_file"] = body.path
        rng = np.random.default_rng(seed)
        shape = {**{n: round(float(x), 6) for n, x in zip(body.shape_names, rng.normal(0, 0.5, len(body.shape_names)),
                                                          strict=True)}, **phenotype}
    else:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    unknown = sorted(set(phenotype) - set(body.shape_names))
    if unknown:
        raise ValueError(f"--phenotype: unknown name(s) {unknown} for {model}; known: {', '.join(body.shape_names)}")
    rig = Rig.from_body_model(body, shape, top_k=top_k).validate()
    params = {"model": model, "anny_rig": anny_rig if model == "anny" else None, "seed": seed,
              "shape": {k: round(float(v), 6) for k, v in shape.items()}, "top_k": top_k}
    rig.metadata = {**rig.metadata, **params}
    return rig, params, inputs


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
                                    help="SMPL-X / FLAME model file or folder (default: $DOPPEL_MODELS_DIR)."),
    top_k: int = typer.Option(None, "--top-k", help="Keep the k largest skin weights per vertex (default: all)."),
    preview_size: int = typer.Option(384, "--preview-size", help="Height of each preview panel in pixels."),
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = None,
    production: ProductionOpt = None,
    fit_dir: Path = typer.Option(None, "--fit", help="A `doppel fit` output folder: use its model and shape."),
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
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
    if preview_size < 64:
        raise ValueError(f"--preview-size must be >= 64 pixels, got {preview_size}")
    gate_inputs = [p for p in (model_file, fit_dir) if p is not None]
    check_stage_out(out, "rig", force, gate_inputs)      # before any slow work
    console = Console()
    # The likeness is the fit's (none without --fit: the rig is then generated from the model, the virtual actor).
    with gate_from_cli(workspace, actor, production, use="rig", command="rig", inputs=gate_inputs,
                       likeness=[fit_dir] if fit_dir is not None else []) as run, \
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"rig: loading {model}", total=3)
        rig_obj, params, inputs = build_default_rig(model, shape, seed, anny_rig, model_file, top_k)
        bar.update(task, description="rig: rendering preview", completed=1)
        with staged_stage_dir(out, "rig", force, gate_inputs) as tmp:
            write_png(tmp / "preview.png", render_preview(rig_obj, size=preview_size))
            bar.update(task, description="rig: saving", completed=2)
            consent = run.provenance
            rig_obj.save(tmp, extra_outputs={"preview": "preview.png"}, inputs=inputs,
                         params={**params, "preview_size": preview_size, "actor_id": consent["actor"],
                                 "consent_id": consent["consent"], "production": consent["production"]})
        run.add_output(out, kind="rig")
        bar.update(task, description="rig: done", completed=3)
    console.print(f"rig: {rig_obj.num_joints} joints, {rig_obj.num_vertices} vertices, "
                  f"{len(rig_obj.blendshape_names)} blendshapes, {rig_obj.skin_indices.shape[1]} influences/vertex "
                  f"-> {out}")
