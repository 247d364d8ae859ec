"""The `doppel` command line (typer + rich).

Each command group lives in its own module under `doppel/commands/` and is registered here. Library
errors (Doppel's own, ValueError, FileNotFoundError, ...) become one red line and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.text import Text

import doppel
from doppel.commands import actor as actor_cmd
from doppel.commands import assets_cmd
from doppel.commands import audit as audit_cmd
from doppel.commands import capture as capture_cmd
from doppel.commands import consent as consent_cmd
from doppel.commands import demo as demo_cmd
from doppel.commands import doctor as doctor_cmd
from doppel.commands import export as export_cmd
from doppel.commands import fit as fit_cmd
from doppel.commands import retarget as retarget_cmd
from doppel.commands import rig as rig_cmd
from doppel.commands import workspace as workspace_cmd

app = typer.Typer(
    name="doppel",
    help="Digital doubles of actors: capture, fitting, rigging, mocap retargeting, export, neural rendering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"doppel {doppel.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print Doppel's version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logging."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


app.command("doctor")(doctor_cmd.doctor)
app.command("demo")(demo_cmd.demo)
app.command("init")(workspace_cmd.init)
app.command("rig")(rig_cmd.rig)
app.add_typer(actor_cmd.app, name="actor")
app.add_typer(consent_cmd.app, name="consent")
app.add_typer(assets_cmd.app, name="assets")
app.add_typer(audit_cmd.app, name="audit")
app.command("export")(export_cmd.export)
app.command("retarget")(retarget_cmd.retarget)
app.command("fit")(fit_cmd.fit)
app.add_typer(capture_cmd.app, name="capture")

_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
                IsADirectoryError, KeyError)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from core.errors import DoppelError
    from core.runtime import tune_process

    tune_process()   # before anything loads torch (OpenMP reads OMP_WAIT_POLICY once)

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = app(args=argv, standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[red]aborted[/red]")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the CLI's one place that turns errors into a red line
        import click

        try:  # typer >= 0.2x raises its vendored click's exceptions (missing or bad options)
            from typer._click.exceptions import ClickException as _VendoredClickException
        except ImportError:
            _VendoredClickException = click.exceptions.ClickException
        if isinstance(e, (click.exceptions.ClickException, _VendoredClickException)):
            e.show()
            sys.exit(e.exit_code)
        if debug or not isinstance(e, (DoppelError, *_USER_ERRORS, OSError)):
            if not debug:
                err_console.print(Text(f"error (internal): {type(e).__name__}: {e}", style="red"))
                err_console.print("run again with --debug for the traceback")
                sys.exit(2)
            raise
        err_console.print(Text(f"error: {e}", style="red"), soft_wrap=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
