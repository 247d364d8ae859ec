"""`doppel consent grant|revoke|show`: consent records for each use of an actor's likeness."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assets.consent import Use, consents_for, grant, revoke
from assets.consent_dates import zone_label
from assets.lineage import Asset, outputs_under_consent
from assets.text_fields import printable
from assets.workspace import VIRTUAL_ACTOR_ID, Workspace
from doppel.commands.cli_output import cli_console, print_table
from doppel.consent_gate import WorkspaceOpt

app = typer.Typer(help="Consent records: which uses of an actor's likeness are allowed, where, until when.",
                  no_args_is_help=True)
_USES = ",".join(u.value for u in Use)


@app.command("grant")
def grant_(actor: str = typer.Argument(..., help="Actor id (`doppel actor list`)."),
           uses: str = typer.Option(..., "--uses", help=f"Comma-separated uses: {_USES}."),
           production: str = typer.Option(..., "--production", help="The production the consent is for."),
           expires: str = typer.Option(..., "--expires", help="Last valid day, YYYY-MM-DD (inclusive, in --timezone)."),
           timezone: str | None = typer.Option(None, "--timezone", help="IANA time zone the consent's dates are in, "
                                               "e.g. Europe/London (default: this machine's). Every machine then "
                                               "agrees when the last day ends."),
           document: Path | None = typer.Option(None, "--document", help="The signed consent form; only its "
                                                "SHA-256 and file name are stored."),
           workspace: WorkspaceOpt = None) -> None:
    """Record a consent signed by ACTOR."""
    c = grant(Workspace.open(workspace), actor, uses, production, expires, document, timezone=timezone)
    doc = f", document {_shown(c.document_name)} sha256 {c.document_sha256[:16]}..." if c.document_sha256 else ""
    cli_console().print(f"consent {c.id}: {actor} allows {','.join(c.uses)} for {_shown(repr(c.production))} "
                        f"through {c.expires.isoformat()} ({c.timezone}){doc}", highlight=False)


@app.command("purge")
def purge_(consent_id: str = typer.Argument(..., help="A revoked or expired consent's id."),
           yes: bool = typer.Option(False, "--yes", help="Delete; without it, only list what would be deleted."),
           include_changed: bool = typer.Option(False, "--include-changed", help="Delete outputs changed since "
                                                "they were registered too (kept by default: hand work at the name?)."),
           workspace: WorkspaceOpt = None) -> None:
    """Delete from disk every output made under a revoked or expired consent, those made from them, and the
    photos its runs read as the actor's likeness; keeps (and says why) paths remade since under another consent,
    inputs another valid consent read, outputs changed since or gone. Recorded in the audit log."""
    from assets.consent_purge import execute_purge, plan_purge

    ws = Workspace.open(workspace)
    plan = plan_purge(ws, consent_id, include_changed)
    console = cli_console()
    table = Table("asset", "kind", "path", "size", "action", title=f"consent {consent_id} ({plan.status}, actor "
                  f"{plan.actor_id}): outputs{'' if yes else ' (nothing deleted without --yes)'}")
    for i in plan.items:
        table.add_row(i.asset_id or "-", i.kind, _shown(i.stored), f"{i.bytes / 1e6:.1f} MB" if i.bytes else "-",
                      "delete" if i.action == "delete" else _shown(f"keep: {i.why}"))
    print_table(table, console)
    total = sum(i.bytes for i in plan.to_delete) / 1e6
    if not yes:
        console.print(f"consent purge: {len(plan.to_delete)} to delete ({total:.1f} MB), {len(plan.kept)} kept; run "
                      "again with --yes to delete them", highlight=False)
        return
    res = execute_purge(ws, plan)
    for item, why in res.failed:
        console.print(f"consent purge: could not delete {_shown(str(item.path))}: {_shown(why)}", style="red",
                      highlight=False)
    gone = sum(i.bytes for i in res.deleted) / 1e6
    console.print(f"consent purge: {len(res.deleted)} deleted ({gone:.1f} MB), {len(res.kept)} kept, "
                  f"{len(res.failed)} failed; audit record {res.audit_seq}", highlight=False)
    if res.failed:
        raise typer.Exit(1)


def _shown(value: str | None) -> str:
    """A stored text value as printed: control characters escaped, rich markup inert."""
    return escape(printable(value))


@app.command("revoke")
def revoke_(consent_id: str = typer.Argument(..., help="Consent id (`doppel consent show ACTOR`)."),
            reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
            workspace: WorkspaceOpt = None) -> None:
    """Revoke a consent at once: new work under it is refused; lists the outputs made under it."""
    ws = Workspace.open(workspace)
    c = revoke(ws, consent_id, reason)
    console = cli_console()
    console.print(f"consent {c.id} revoked ({c.actor_id}, {_shown(repr(c.production))}); new work under it is refused",
                  highlight=False)
    direct, derived = outputs_under_consent(ws, c.id)
    _print_outputs(console, ws, c.id, direct, derived)
    _print_unfinished(console, ws, c.id)
    _print_review_sites(console, ws, c.id, {a.id for a in direct + derived})


def _print_review_sites(console: Console, ws: Workspace, consent_id: str, ids: set[str]) -> None:
    """A line for the review sites holding copies of the consent's outputs (`assets.review_sites`)."""
    from assets.review_sites import sites_holding

    sites = sites_holding(ws, ids)
    if sites:
        console.print(f"review sites with copies of them: {', '.join(_shown(str(p)) for _, p, _ in sites)}; "
                      f"`doppel consent purge {consent_id}` deletes them too (`doppel review` rebuilds a site "
                      "without them)", highlight=False, soft_wrap=True)


def _print_unfinished(console: Console, ws: Workspace, consent_id: str) -> None:
    """A line for what runs under the consent that did not finish left on disk (`assets.unfinished_runs`)."""
    from assets.unfinished_runs import unfinished_of

    left = unfinished_of(ws, consent_id)
    if left:
        shown = ", ".join(_shown(str(u.leftover.path)) for u in left[:3]) + (" ..." if len(left) > 3 else "")
        running = sum(u.leftover.alive for u in left)
        now = f" ({running} being written by a run still going: purge once it has stopped)" if running else ""
        console.print(f"also on disk: {len(left)} temporary file(s) or checkpoint(s) of runs under it that did not "
                      f"finish (killed, interrupted or still running{now}): {shown}; `doppel consent purge "
                      f"{consent_id}` deletes them too", highlight=False, soft_wrap=True)


def _print_outputs(console: Console, ws: Workspace, consent_id: str, direct: list[Asset],
                   derived: list[Asset]) -> None:
    """The outputs a revoked consent leaves, each path marked "(gone)" or "(replaced by ID)" as `assets list`
    marks it (after a purge, what it deleted)."""
    from assets.lineage import on_disk
    from doppel.commands.assets_cmd import where_shown

    if not direct and not derived:
        console.print("no outputs were made under it")
        return
    left = sum(on_disk(ws, a.path).exists() for a in direct + derived)
    table = Table("asset", "kind", "path", "made", "how", title=f"outputs to withdraw or delete ({left} on disk: "
                  f"`doppel consent purge {consent_id}` lists and deletes them)")
    where = where_shown(ws)
    for a in direct:
        table.add_row(a.id, a.kind, where(a), a.created[:19], f"under this consent ({a.use})")
    for a in derived:
        table.add_row(a.id, a.kind, where(a), a.created[:19], "made from those")
    print_table(table, console)


@app.command("show")
def show(actor: str = typer.Argument(..., help="Actor id."), workspace: WorkspaceOpt = None) -> None:
    """The actor's consent records, their status today and what was made under each."""
    ws = Workspace.open(workspace)
    records = consents_for(ws, actor)
    console = cli_console()
    if not records:
        none = "the built-in virtual actor needs no consent" if actor == VIRTUAL_ACTOR_ID else "no consent records"
        console.print(f"{actor}: {none}")
        return
    table = Table("consent", "status", "uses", "production", "expires", "document sha256", "outputs",
                  title=f"consents of {actor} (now: {_dt.datetime.now(_dt.UTC).isoformat(timespec='minutes')})")
    for c in records:
        direct, derived = outputs_under_consent(ws, c.id)
        status = c.status()
        if c.revoked:
            status += f" {c.revoked[:10]}: {c.revoke_reason}"
        table.add_row(c.id, _shown(status), ",".join(c.uses), _shown(c.production),
                      f"{c.expires.isoformat()} ({zone_label(c.timezone)})",
                      (c.document_sha256 or "-")[:16], f"{len(direct)} (+{len(derived)} derived)")
    print_table(table, console)
    for c in records:
        if c.revoked:
            direct, derived = outputs_under_consent(ws, c.id)
            if direct or derived:
                console.print(f"revoked consent {c.id}:")
                _print_outputs(console, ws, c.id, direct, derived)
