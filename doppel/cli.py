"""The `doppel` command line (typer + rich).

Each command group lives in its own module under `doppel/commands/` and is registered here. Library
errors (Doppel's own, ValueError, FileNotFoundError, ...) become one red line and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn

import typer
from rich.text import Text

import doppel
from core.errors import DoppelError
from doppel.commands import actor as actor_cmd
from doppel.commands import assets_cmd
from doppel.commands import audit as audit_cmd
from doppel.commands import batch as batch_cmd
from doppel.commands import capture as capture_cmd
from doppel.commands import colorspaces as colorspaces_cmd
from doppel.commands import consent as consent_cmd
from doppel.commands import demo as demo_cmd
from doppel.commands import doctor as doctor_cmd
from doppel.commands import export as export_cmd
from doppel.commands import fit as fit_cmd
from doppel.commands import keys as keys_cmd
from doppel.commands import render as render_cmd
from doppel.commands import retarget as retarget_cmd
from doppel.commands import review as review_cmd
from doppel.commands import rig as rig_cmd
from doppel.commands import swap as swap_cmd
from doppel.commands import texture as texture_cmd
from doppel.commands import verify as verify_cmd
from doppel.commands import workspace as workspace_cmd
from doppel.commands.cli_output import clear_interrupt_notes, cli_console, interrupt_notes
from doppel.quiet import native_stderr_filter, quiet_native_logs

app = typer.Typer(
    name="doppel",
    help="Digital doubles of actors: capture, fitting, rigging, mocap retargeting, export, neural rendering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = cli_console(stderr=True)
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
app.command("review")(review_cmd.review)
app.add_typer(capture_cmd.app, name="capture")
app.command("swap")(swap_cmd.swap)
app.command("colorspaces")(colorspaces_cmd.colorspaces)
app.command("texture")(texture_cmd.texture)
app.add_typer(render_cmd.app, name="render")
app.command("batch")(batch_cmd.batch)
app.add_typer(keys_cmd.app, name="keys")
app.command("verify")(verify_cmd.verify)


def unwrap_help(doc: str) -> str:
    """A command docstring for Typer's rich help: each paragraph on one line, so the help is wrapped to the
    terminal (Typer keeps a docstring's single line breaks, which break sentences mid-line in the command list).
    Paragraphs (blank lines) and Click's no-rewrap blocks (a paragraph starting with \\b) are kept."""
    paras = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(ln.strip() for ln in p.splitlines()) for p in paras)


def _unwrap_command_help(t: typer.Typer) -> None:
    for info in t.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = unwrap_help(doc)
    for group in t.registered_groups:
        _unwrap_command_help(group.typer_instance)


_unwrap_command_help(app)

_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
                IsADirectoryError, KeyError)
INTERRUPTED_LINE = "interrupted: nothing written, any previous result kept"


class Interrupted(BaseException):
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP. Not a KeyboardInterrupt, so that typer cannot turn it into a silent exit
    130; a BaseException, so that `except Exception` in library code lets it through to the staging cleanup."""


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (the terminal closed: the ssh session dropped) raise Interrupted inside the
    block (main thread only), so the stage's cleanup runs; a signal the process was started ignoring (``nohup``,
    a background job's SIGINT) stays ignored. Old handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
           if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class TruncatedInputError(DoppelError):
    """An input file ended early (EOFError from a reader: a 0-byte or truncated .npz, .pkl, ...)."""


def _eof_is_an_error(fn: Callable) -> Callable:
    """Wrap a command so that an EOFError from a reader becomes a TruncatedInputError naming the file: click
    would otherwise turn it into "Aborted!", exit 1, as if the user had pressed Ctrl-D at a prompt."""
    if getattr(fn, "_doppel_eof_wrapped", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EOFError as e:
            where = _file_in_traceback(e)
            what = f"{where}: empty or truncated file" if where else "an input file is empty or truncated"
            raise TruncatedInputError(f"{what} ({e or 'unexpected end of file'})") from e

    wrapper._doppel_eof_wrapped = True
    return wrapper


def _wrap_commands(typer_app: typer.Typer) -> None:
    """Apply ``_eof_is_an_error`` to every command of ``typer_app`` and its sub-apps (idempotent)."""
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _eof_is_an_error(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _wrap_commands(group.typer_instance)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from core.runtime import tune_process

    tune_process()   # before anything loads torch (OpenMP reads OMP_WAIT_POLICY once)
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args
    quiet_native_logs(debug)
    _wrap_commands(app)
    clear_interrupt_notes()
    try:
        with _interrupts_raise(), native_stderr_filter(enabled=not debug):
            rc = app(args=args, standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (Interrupted, KeyboardInterrupt):
        _fail(_interrupted_line(), 130)
    except typer.Abort:
        _fail("aborted", 130)
    except Exception as e:  # noqa: BLE001 - the CLI's one place that turns errors into a red line
        if _caused_by_interrupt(e):   # raised inside native code (Ray's wait), which wrapped it in a SystemError
            _fail(_interrupted_line(), 130)
        _handle_error(e, debug)
    if rc == 130:       # typer's own KeyboardInterrupt path (a handler other than ours was active)
        _fail(_interrupted_line(), 130)
    sys.exit(rc if isinstance(rc, int) else 0)


def _interrupted_line() -> str:
    """The one line of an interrupted command, with what the command registered to say then (`on_interrupt`)."""
    return "; ".join([INTERRUPTED_LINE, *interrupt_notes()])


def _caused_by_interrupt(e: BaseException) -> bool:
    """True when ``e`` was raised because of Ctrl-C / SIGTERM (an Interrupted or KeyboardInterrupt among its causes
    or contexts)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Interrupted | KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _file_in_traceback(e: BaseException) -> str | None:
    """The file a reader was reading when ``e`` was raised: the innermost frame with an open file object (or
    a path to an existing file) among its locals; None when there is none."""
    tb, frames = e.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            name = getattr(value, "name", None) if hasattr(value, "read") else value
            if isinstance(name, str | os.PathLike) and os.path.isfile(name):
                return os.fspath(name)
    return None


def _fail(line: str, code: int) -> NoReturn:
    err_console.print(Text(line, style="red"), soft_wrap=True)
    sys.exit(code)


def _nothing(notes: str) -> str:
    """"nothing was written: " before the advice of a failed command, unless it kept something to go on from."""
    return "" if notes else "nothing was written: "


def _written(e: OSError) -> str:
    """" writing PATH" for a full disk's error: a copy's or a link's destination (``filename2``: shutil.copyfile
    names the source first, and the message named a source on another, roomy disk), else its one file; "" when
    it names none."""
    from core.stage_folders import shown_path

    path = e.filename2 or e.filename
    if isinstance(path, str | bytes | os.PathLike) and path:
        return f" writing {shown_path(os.fsdecode(path))}"
    return f" writing {path}" if path else ""


def _handle_error(e: BaseException, debug: bool) -> NoReturn:
    """One red line and exit 1 for a user error; exit 2 naming an internal error; the traceback with --debug."""
    import click

    try:  # typer >= 0.2x raises its vendored click's exceptions (missing or bad options)
        from typer._click.exceptions import ClickException as _VendoredClickException
    except ImportError:
        _VendoredClickException = click.exceptions.ClickException
    if isinstance(e, (click.exceptions.ClickException, _VendoredClickException)):
        e.show()
        sys.exit(e.exit_code)
    if debug:
        raise e
    # a run stopped by a system error (a full disk, a crash) says what it kept to go on from, as an interrupted one
    # does: "run again" without --resume would start over and discard it
    notes = "".join(f"; {n}" for n in interrupt_notes()) if not isinstance(e, (DoppelError, *_USER_ERRORS)) else ""
    if isinstance(e, sqlite3.OperationalError) and "full" in str(e).lower():
        _fail(f"error: disk full while writing the workspace index ({e}); nothing was recorded: free some space "
              f"and run again{notes}", 1)
    if isinstance(e, sqlite3.OperationalError) and "disk i/o error" in str(e).lower():    # SQLite's word for EDQUOT
        _fail(f"error: the workspace index could not be written ({e}: an exceeded disk quota, or a failing disk or "
              f"file server); nothing was recorded: check the quota and the storage, and run again{notes}", 1)
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = _written(e)
        _fail(f"error: disk full{where} ({e.strerror}); {_nothing(notes)}free some space and run again{notes}", 1)
    if isinstance(e, OSError) and e.errno == errno.EDQUOT:
        where = _written(e)
        _fail(f"error: disk quota exceeded{where} ({e.strerror}); {_nothing(notes)}free some of your (or your "
              f"group's) quota, or ask for a larger one, and run again{notes}", 1)
    if isinstance(e, OSError) and e.errno == errno.EEXIST and e.filename:
        _fail(f"error: {e.filename}: already exists ({e.strerror}); choose another path{notes}", 1)
    if not isinstance(e, (DoppelError, *_USER_ERRORS, OSError)):
        first = next((line for line in str(e).splitlines() if line.strip()), "")
        err_console.print(Text(f"error (internal): {type(e).__name__}: {first}{notes}", style="red"), soft_wrap=True)
        err_console.print("run again with --debug for the traceback")
        sys.exit(2)
    _fail(f"error: {e}{notes}", 1)
