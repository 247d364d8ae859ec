"""CLI errors are one clear line (issue 21 section 5): exit 1 for bad input, 130 for Ctrl-C, 2 only for bugs,
never a traceback without --debug; and native log noise is hidden unless --debug (issue 13 section 9)."""

import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.storage import sha256_file
from doppel.cli import app, main
from doppel.quiet import filter_lines
from tests.cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]


def empty_rig(d: Path) -> Path:
    """A rig folder whose manifest is right but whose rig.npz is 0 bytes."""
    d.mkdir()
    (d / "rig.npz").write_bytes(b"")
    (d / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "stage": "rig", "rig_schema_version": 1,
        "outputs": {"rig": {"path": "rig.npz", "sha256": sha256_file(d / "rig.npz")}}}))
    return d


def test_zero_byte_npz_is_an_error_naming_the_file_not_ctrl_c(clips, tmp_path, capsys):
    rig = empty_rig(tmp_path / "rig")
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", rig, "--out", tmp_path / "a")
    assert code == 1, err                                   # was: "aborted", exit 130
    assert err.strip().startswith("error: ") and str(rig / "rig.npz") in err and "empty" in err
    assert err.strip().count("\n") == 0 and not (tmp_path / "a").exists()


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk full"), (errno.EDQUOT, "disk quota exceeded")])
def test_disk_full_names_the_path_and_leaves_nothing_partial(clips, tmp_path, capsys, monkeypatch, code, words):
    """A full disk, or a quota exceeded on a studio file server (EDQUOT was printed as a raw error naming the
    temporary file)."""
    import core.storage

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(core.storage.os, "fsync", full)
    out = tmp_path / "a"
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", clips[1], "--out", out, "--preview-size", "64")
    assert code == 1, err
    line = err.strip()
    assert line.count("\n") == 0 and words in line and str(out) in line and ".tmp-" not in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip.bvh", "target.bvh"]


@pytest.mark.parametrize("argv", [
    ["retarget", "{clip}", "--rig", "{target}", "--out", "{file}"],
    ["capture", "synth", "--out", "{file}", "--size", "64", "--cameras", "2"],
    ["init", "{file}"],
])
def test_out_an_existing_file_is_one_line(clips, tmp_path, capsys, argv):
    f = tmp_path / "existing"
    f.write_text("keep me")
    names = {"clip": clips[0], "target": clips[1], "file": f}
    code, _, err = run_cli(capsys, *[a.format(**names) for a in argv])
    assert code == 1 and "Errno" not in err and str(f) in err and err.strip().count("\n") == 0
    assert f.read_text() == "keep me"


def test_an_index_write_refused_by_a_quota_is_one_line(tmp_path, capsys, monkeypatch):
    """SQLite reports a write refused by a quota (EDQUOT) as "disk I/O error", which the CLI printed as an internal
    error ("run again with --debug")."""
    from assets.workspace import Workspace

    def refused(root):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Workspace, "init", staticmethod(refused))
    code, _, err = run_cli(capsys, "init", tmp_path / "ws")
    assert code == 1 and "could not be written" in err and "quota" in err and err.strip().count("\n") == 0, err
    assert "internal" not in err


def test_init_on_a_full_disk_leaves_no_half_made_index(tmp_path, capsys, monkeypatch):
    from assets.workspace import INDEX_NAME, Workspace

    real = Workspace.init

    def fills_the_disk(root):
        Path(root, INDEX_NAME).write_bytes(b"SQLite format 3\x00 half")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Workspace, "init", staticmethod(fills_the_disk))
    for ws in (tmp_path / "new", tmp_path / "existing-folder"):
        if ws.name == "existing-folder":
            ws.mkdir()
            (ws / "notes.txt").write_text("mine")
        code, _, err = run_cli(capsys, "init", ws)
        assert code == 1 and "disk full" in err and err.strip().count("\n") == 0, err
        assert not (ws / INDEX_NAME).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing-folder"]
    monkeypatch.setattr(Workspace, "init", staticmethod(real))
    assert run_cli(capsys, "init", tmp_path / "existing-folder")[0] == 0
    assert Workspace.open(tmp_path / "existing-folder").index_path.is_file()
    assert (tmp_path / "existing-folder" / "notes.txt").read_text() == "mine"


@pytest.fixture()
def boom_command():
    def boom(kind: str) -> None:
        """Raise an error of the given kind (test only)."""
        if kind == "internal":
            raise RuntimeError("first line of a bug\n  and a second line\n  and a third")
        if kind == "eof":
            raise EOFError
        raise KeyError("missing key")

    app.command("boom")(boom)
    yield
    app.registered_commands.pop()


@pytest.mark.parametrize(("kind", "code", "needle"), [
    ("internal", 2, "error (internal): RuntimeError: first line of a bug"),
    ("eof", 1, "empty or truncated"),
    ("key", 1, "error: 'missing key'"),
])
def test_errors_are_one_line_without_traceback(boom_command, capsys, kind, code, needle):
    got, _, err = run_cli(capsys, "boom", kind)
    assert got == code and needle in err and "Traceback" not in err and "second line" not in err
    assert err.splitlines()[0].startswith("error")


def test_debug_shows_the_traceback(boom_command, capsys):
    with pytest.raises(RuntimeError, match="first line of a bug"):
        main(["--debug", "boom", "internal"])


NOISE = [
    b"W0000 00:00:1796140252.935891   10385 inference_feedback_manager.cc:114] Feedback manager requires a model\n",
    b"W0000 00:00:1796140253.119802   10386 landmark_projection_calculator.cc:186] Using NORM_RECT without\n",
    b"I0000 00:00:1733000000.000001   42 gl_context.cc:357] GL version: 3.2\n",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
    b"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution will not be available.\n",
    # faiss, clustering COLMAP's vocabulary tree (`doppel capture calibrate --sfm --matching retrieval`)
    b"WARNING clustering 1024 points to 64 centroids: please provide at least 2496 training points\n",
]
KEEP = [b"error: rig.npz: unreadable\n", b"E0000 00:00:1733000000.000001   42 calculator.cc:1] a real error\n",
        b"warning: 3 cameras see nothing\n"]


def test_filter_drops_native_noise_only():
    assert filter_lines(b"".join(NOISE + KEEP)) == b"".join(KEEP)


_NOISY = ("import os, sys; from doppel.quiet import native_stderr_filter\n"
          "with native_stderr_filter(enabled=sys.argv[1] == 'quiet'):\n"
          "    os.write(2, {data!r})\n"
          "    print('python line', file=sys.stderr)\n")


@pytest.mark.parametrize("mode", ["quiet", "debug"])
def test_native_lines_on_fd2_are_hidden_unless_debug(mode):
    code = _NOISY.format(data=b"".join(NOISE + KEEP))
    r = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    expected = (KEEP if mode == "quiet" else NOISE + KEEP) + [b"python line\n"]
    assert r.stderr == b"".join(expected)


@pytest.mark.parametrize("content", ["[1, 2]", '"a string"', "[" * 100000 + "]" * 100000, "\x00\xff binary"])
@pytest.mark.parametrize("command", ["retarget", "export"])
def test_unreadable_manifest_is_one_line_exit_1(clips, tmp_path, capsys, content, command):
    rig = tmp_path / "rig"
    rig.mkdir()
    (rig / "manifest.json").write_bytes(content.encode("latin-1"))
    (rig / "rig.npz").write_bytes(b"")
    argv = (["retarget", clips[0], "--rig", rig, "--out", tmp_path / "a"] if command == "retarget"
            else ["export", rig, "--out", tmp_path / "a.glb"])
    code, _, err = run_cli(capsys, *argv)
    assert code == 1, err                                   # was: exit 2, "error (internal): AttributeError"
    assert err.strip().count("\n") == 0 and "manifest.json" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.glb").exists()
