"""`doppel demo`: the whole pipeline on the built-in virtual actor, with an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.commands.cli_output import cli_console, stage_bar
from doppel.consent_gate import WorkspaceOpt


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder (created if missing)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller images and fewer iterations (for CI)."),
    seed: int = typer.Option(0, "--seed", help="Virtual actor seed: same seed, same actor."),
    workspace: WorkspaceOpt = None,
    force: bool = typer.Option(False, "--force", help="Replace an --out folder that holds another stage's output."),
) -> None:
    """Run the whole pipeline (virtual actor, renders, capture, fit, rig, retarget, export) on the virtual actor
    and write OUT/report.html. OUT is replaced whole when the demo finishes, never left half-written.

    With a workspace (--workspace, $DOPPEL_WORKSPACE, or run inside one), every stage folder is
    registered in its asset library as the virtual actor's, with lineage and audit records.
    """
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.consent_gate import VIRTUAL_ACTOR_ID, open_for_actor
    from doppel.pipeline.demo import STAGES, run_demo

    out = check_stage_out(out, "demo", force)
    ws = open_for_actor(workspace, VIRTUAL_ACTOR_ID)  # fails now, not after the demo, if W is not a workspace

    console = cli_console()
    with stage_bar(console, transient=False) as bar:
        task = bar.add_task("demo", total=len(STAGES))

        def on_stage(name: str, i: int, total: int) -> None:
            bar.update(task, description=f"demo: {name}", completed=i)

        with staged_stage_dir(out, "demo", force) as tmp:
            key = ws.manifest_key() if ws is not None else None
            report = out / run_demo(tmp, quick=quick, seed=seed, progress=on_stage, key=key).relative_to(tmp)
        bar.update(task, description="demo: done", completed=len(STAGES))
    console.print(f"report: {report}")
    if ws is not None:
        from core.storage import MANIFEST_NAME
        from doppel.consent_gate import register_stage_folders

        # every stage folder, nested ones too (capture/session, capture/ingest, the swap's plate and side folder)
        folders = sorted((m.parent for m in Path(out).rglob(MANIFEST_NAME)),
                         key=lambda d: ((d / MANIFEST_NAME).stat().st_mtime_ns, d.name))
        assets = register_stage_folders(ws, VIRTUAL_ACTOR_ID, "demo", folders, command="demo")
        console.print(f"workspace {ws.root}: {len(assets)} output(s) registered for the virtual actor "
                      "(no consent needed): doppel assets list --actor virtual --tree")
