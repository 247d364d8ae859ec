"""`doppel demo`: the whole pipeline on the built-in virtual actor, with an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder (created if missing)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller images and fewer iterations (for CI)."),
    seed: int = typer.Option(0, "--seed", help="Virtual actor seed: same seed, same actor."),
) -> None:
    """Run every stage that exists on the virtual actor and write OUT/report.html."""
    from doppel.pipeline.demo import STAGES, run_demo

    console = Console()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("demo", total=len(STAGES))

        def on_stage(name: str, i: int, total: int) -> None:
            bar.update(task, description=f"demo: {name}", completed=i)

        report = run_demo(out, quick=quick, seed=seed, progress=on_stage)
        bar.update(task, description="demo: done", completed=len(STAGES))
    console.print(f"report: {report}")
