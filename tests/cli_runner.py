"""Run the `doppel` CLI in-process for a test: (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from doppel.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``doppel ARGS...`` (paths and numbers are turned into strings) -> (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
