"""`doppel assets list`: what the workspace holds, and what was made from what."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from assets.lineage import AssetNode, asset_tree, list_assets, walk_tree
from assets.text_fields import printable
from assets.workspace import Workspace
from doppel.commands import leftovers
from doppel.commands.cli_output import cli_console, print_table
from doppel.consent_gate import WorkspaceOpt

app = typer.Typer(help="The asset library: outputs registered by gated commands, with their lineage.",
                  no_args_is_help=True)
app.command("leftovers")(leftovers.leftovers)


def _label(node: AssetNode, lapsed: dict[str, str], where) -> str:
    a = node.asset
    consent = f"{a.consent_id}{_state(a.consent_id, lapsed)}" if a.consent_id else "no consent needed"
    production = _shown(repr(a.production))
    return f"[bold]{a.kind}[/bold] {a.id}  {where(a)}  [dim]{a.created[:19]} {a.use} {production} {consent}[/dim]"


def where_shown(ws: Workspace):
    """where(asset): its path, and whether that path still holds it: "(replaced by ID)" when a later output
    was registered at the same path, "(gone)" when nothing is there any more. Two exports to one file were two
    rows of one path, with nothing to say which one the file is."""
    state_of = path_state(ws)

    def where(a) -> str:
        shown = _shown(a.path)
        state, by = state_of(a)
        if state == "replaced":
            return f"{shown} [dim](replaced by {by})[/dim]"
        return shown if state == "current" else f"{shown} [dim](gone)[/dim]"

    return where


def path_state(ws: Workspace):
    """state_of(asset) -> ("current", None), ("replaced", id of the later output registered at its path) or
    ("gone", None) when nothing is at its path any more."""
    from assets.lineage import held_at_paths, on_disk

    held = held_at_paths(ws)

    def state_of(a) -> tuple[str, str | None]:
        if a.path in held and a.id not in held[a.path][1]:
            return "replaced", held[a.path][0]
        return ("current" if on_disk(ws, a.path).exists() else "gone"), None

    return state_of


def _json_lines(ws: Workspace, rows) -> None:
    """``rows``: (asset, depth or None, tree parent id or None) -> one JSON object per line on standard output."""
    import json

    from assets.lineage import on_disk

    lapsed, state_of = _lapsed(ws), path_state(ws)
    for a, depth, parent in rows:
        state, by = state_of(a)
        obj = {"id": a.id, "kind": a.kind, "actor": a.actor_id, "path": a.path, "file": str(on_disk(ws, a.path)),
               "state": state, "replaced_by": by, "created": a.created, "use": a.use, "production": a.production,
               "consent": a.consent_id, "sha256": a.sha256,
               "consent_status": None if not a.consent_id else lapsed.get(a.consent_id, "valid")}
        if depth is not None:
            obj |= {"depth": depth, "parent": parent}
        typer.echo(json.dumps(obj, sort_keys=True, ensure_ascii=False))


def _lapsed(ws: Workspace) -> dict[str, str]:
    """Consent id -> "revoked" / "expired" for the consents no longer valid today (the others are valid)."""
    from assets.consent import outputs_of_lapsed_consents

    return {c.id: c.status() for _, c in outputs_of_lapsed_consents(ws)}


def _state(consent_id: str, lapsed: dict[str, str]) -> str:
    return f" ({lapsed[consent_id]}: withdraw)" if consent_id in lapsed else ""


def _shown(value: str) -> str:
    return escape(printable(value))


@app.command("list")
def list_(actor: str | None = typer.Option(None, "--actor", help="Only this actor's assets."),
          kind: str | None = typer.Option(None, "--kind", help="Only this kind (capture, fit, rig, ...)."),
          tree: bool = typer.Option(False, "--tree", help="Lineage tree: what was made from each of the actor's "
                                    "roots (needs --actor)."),
          as_json: bool = typer.Option(False, "--json", help="One JSON object per asset, one per line (its file, "
                                       "whether it is still there, its consent's status; with --tree its depth "
                                       "and parent), for scripts."),
          workspace: WorkspaceOpt = None) -> None:
    """List registered assets, or with --tree what was made from the actor's captures."""
    ws = Workspace.open(workspace)
    console = cli_console()
    if tree and not actor:
        raise ValueError("assets list: --tree needs --actor A")
    if as_json:
        if tree:
            rows, parents = [], []
            for node, depth in walk_tree(asset_tree(ws, actor)):
                del parents[depth:]
                rows.append((node.asset, depth, parents[-1] if parents else None))
                parents.append(node.asset.id)
        else:
            rows = [(a, None, None) for a in list_assets(ws, actor, kind)]
        _json_lines(ws, rows)
        return
    if tree:
        roots, lapsed, where = asset_tree(ws, actor), _lapsed(ws), where_shown(ws)
        top = Tree(f"actor {actor}: {len(roots)} root asset(s)")
        branches = [top]                       # the branch of each depth along the current path
        for node, depth in walk_tree(roots):
            del branches[depth + 1:]
            branches.append(branches[depth].add(_label(node, lapsed, where)))
        print_table(top, console)
        return
    table = Table("asset", "kind", "actor", "path", "made", "use", "production", "consent")
    lapsed, where = _lapsed(ws), where_shown(ws)
    for a in list_assets(ws, actor, kind):
        table.add_row(a.id, a.kind, a.actor_id, where(a), a.created[:19], a.use, _shown(a.production),
                      f"{a.consent_id}{_state(a.consent_id, lapsed)}" if a.consent_id else "not needed")
    print_table(table, console)
