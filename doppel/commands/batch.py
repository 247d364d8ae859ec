"""`doppel batch PLAN.yaml`: many stage jobs (retarget, export, rig, fit, capture ingest) as a DAG of Ray tasks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from doppel.commands.cli_output import cli_console, on_interrupt, print_table


def batch(
    plan: Path = typer.Argument(..., help="Plan file (YAML): workspace, production, jobs."),
    address: str = typer.Option(None, "--address", help="auto, HOST:PORT or ray://HOST:PORT of a Ray cluster "
                                "(default: an embedded local Ray)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Tasks in flight at most (local Ray: also the CPUs "
                                "it uses); default: every CPU Ray has."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the tasks and their dependencies; run nothing."),
    resume: bool = typer.Option(False, "--resume", help="Skip tasks whose outputs are current (a re-run after an "
                                "interruption)."),
    max_retries: int = typer.Option(3, "--max-retries", min=0, help="Times a task is re-run when its worker dies."),
    report: Path = typer.Option(None, "--report", help="HTML report path (default: batch_report.html beside the "
                                "plan)."),
) -> None:
    """Run a plan of stage jobs on Ray: progress per stage, a final table and batch_report.html."""
    from doppel.batch.dag import build_dag
    from doppel.batch.execute import BatchConfig, run_batch
    from doppel.batch.plan import load_plan
    from doppel.batch.report import STATUSES, write_html_report

    console = cli_console()
    dag = build_dag(load_plan(plan))          # every plan error before anything runs
    if dry_run:
        console.print(f"{len(dag.tasks)} tasks (root {dag.plan.root}):", highlight=False, markup=False,
                      soft_wrap=True)
        for line in dag.describe():
            console.print("  " + line, highlight=False, markup=False, soft_wrap=True)   # one line a task
        return
    cfg = BatchConfig(address=address, workers=workers, resume=resume, max_retries=max_retries)
    on_interrupt(lambda: f"tasks that finished are kept: `doppel batch {plan} --resume` skips them")
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            res = run_batch(dag, cfg, progress=lambda r: live.update(_table(r)))
    else:                                     # a log: the final table once, at the width it needs
        res = run_batch(dag, cfg)
        print_table(_table(res), console)
    out = write_html_report(res, plan, report or Path(plan).resolve().parent / "batch_report.html")
    console.print()
    counts = ", ".join(f"{res.count(s)} {s}" for s in STATUSES if res.count(s))
    console.print(f"{len(res.states)} tasks ({counts}) in {res.seconds:.1f} s; {res.ray}; report: {out}",
                  highlight=False, markup=False, soft_wrap=True)
    for st in res.states.values():
        if st.status not in ("done", "skipped"):
            console.print(f"[red]{st.status}[/red] {escape(st.task.id)}: {escape(st.message)}", highlight=False,
                          soft_wrap=True)
    if not res.ok:
        raise typer.Exit(1)


def _table(result) -> Table:
    """Tasks per stage: done / skipped / running / pending / failed / refused / flagged / blocked."""
    from doppel.batch.report import STATUSES, per_stage

    t = Table(title="doppel batch")
    t.add_column("stage")
    for s in STATUSES:
        t.add_column(s, justify="right")
    for name, c in per_stage(result).items():
        t.add_row(name, *(str(c[s]) if c[s] else "" for s in STATUSES))
    return t
