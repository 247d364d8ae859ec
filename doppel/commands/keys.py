"""`doppel keys init|show`: the workspace's signing identity for content credentials (C2PA)."""

from __future__ import annotations

from pathlib import Path

import typer

from assets.signing_keys import init_keys, load_identity
from assets.workspace import Workspace
from doppel.commands.cli_output import cli_console
from doppel.consent_gate import WorkspaceOpt

app = typer.Typer(help="The studio signing identity (C2PA) of a workspace.", no_args_is_help=True)


@app.command("init")
def init(org: str = typer.Option(None, "--org", help="Organisation named in the certificates "
                                 "(default: 'Doppel studio'; with --cert: the certificate's)."),
         cert: Path = typer.Option(None, "--cert", help="A real C2PA certificate chain (PEM: signer first, ending "
                                   "with its root, the trust anchor) instead of a generated one."),
         key: Path = typer.Option(None, "--key", help="The private key (PEM, ECDSA P-256) of --cert."),
         force: bool = typer.Option(False, "--force", help="Replace an existing signing identity."),
         workspace: WorkspaceOpt = None) -> None:
    """Create an ECDSA P-256 root and signer certificate (or import --cert/--key) and record the trust anchor.
    Private keys are written with mode 0600 and never printed."""
    info = init_keys(Workspace.open(workspace), org=org, cert=cert, key=key, force=force)
    cli_console().print(f"signing identity ({info.source}) for {info.org!r} in {info.folder}: signer "
                        f"{info.signer_subject}, valid until {info.not_after[:10]}; trust anchor sha256 "
                        f"{info.anchor_sha256}", markup=False, highlight=False,
                        soft_wrap=True)        # the fingerprint is copied from this line: never wrapped


@app.command("show")
def show(workspace: WorkspaceOpt = None) -> None:
    """Print the signing identity (organisation, validity, trust anchor fingerprint); exit 1 if unusable."""
    import hashlib

    ident = load_identity(Workspace.open(workspace))
    cli_console().print(f"organisation {ident.org!r}, signer valid until {ident.not_after.date()}, trust anchor "
                        f"sha256 {hashlib.sha256(ident.anchor_pem).hexdigest()}", markup=False, highlight=False,
                        soft_wrap=True)        # the fingerprint is copied from this line: never wrapped
