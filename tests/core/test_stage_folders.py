"""Stage folders are replaced whole or not at all; --out folders of another stage are refused."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.stage_folders import (
    STAGE_MARKER,
    StageFolderError,
    _host,
    check_stage_out,
    clean_stale,
    folder_stage,
    shown_path,
    staged_stage_dir,
    temp_files_of,
    temp_sibling,
)

REPO = Path(__file__).resolve().parents[2]


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name != d.name)


@pytest.fixture()
def old_result(tmp_path):
    out = tmp_path / "a"
    with staged_stage_dir(out, "retarget") as tmp:
        (tmp / "animation.npz").write_bytes(b"old animation")
        (tmp / "manifest.json").write_text(json.dumps({"stage": "retarget", "n": 1}))
    return out


def test_success_replaces_the_folder_whole(old_result):
    with staged_stage_dir(old_result, "retarget") as tmp:
        assert tmp.parent == old_result.parent and tmp.name.startswith(".a.tmp-")
        (tmp / "manifest.json").write_text("new")
    assert _tree(old_result) == {"manifest.json": b"new", STAGE_MARKER: b'{"stage": "retarget"}\n'}
    assert _siblings(old_result) == [], "temporary or old folder left behind"


@pytest.mark.parametrize("exc", [RuntimeError("preview failed"), KeyboardInterrupt(), OSError(errno.ENOSPC, "full")])
def test_failure_keeps_the_old_result_whole(old_result, exc):
    before = _tree(old_result)
    with pytest.raises(type(exc)), staged_stage_dir(old_result, "retarget") as tmp:
        (tmp / "animation.npz").write_bytes(b"NEW animation")
        raise exc
    assert _tree(old_result) == before
    assert _siblings(old_result) == []


def test_oserror_names_the_final_path(tmp_path):
    out = tmp_path / "a"
    with pytest.raises(OSError) as e, staged_stage_dir(out, "rig") as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "rig.npz"))
    assert e.value.filename == str(out / "rig.npz") and e.value.errno == errno.ENOSPC


def test_a_full_disk_in_a_copy_names_its_destination(tmp_path, capsys):
    """shutil.copyfile's error names the source first and the destination second: the destination in the stage's
    temporary folder is shown as its final path, and the CLI's line names it (it named the source, on another,
    roomy disk: `doppel review` into a full disk said "disk full writing /tmp/demo/actor/albedo.png")."""
    from doppel.cli import _handle_error

    src, out = tmp_path / "albedo.png", tmp_path / "review"
    with pytest.raises(OSError) as e, staged_stage_dir(out, "review") as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(tmp / "files" / "albedo.png"))
    assert e.value.filename == str(src) and e.value.filename2 == str(out / "files" / "albedo.png")
    with pytest.raises(SystemExit):
        _handle_error(e.value, debug=False)
    said = capsys.readouterr().err
    assert f"disk full writing {out / 'files' / 'albedo.png'}" in said.replace("\n", ""), said


def test_a_path_in_a_stages_temporary_folder_is_shown_as_its_final_path(tmp_path):
    out = tmp_path / "shot.v2"
    with staged_stage_dir(out, "render") as tmp:
        assert shown_path(tmp / "ring02" / "0000.exr") == out / "ring02" / "0000.exr"
    assert shown_path(out / "x.png") == out / "x.png"
    assert shown_path(tmp_path / ".shot.old-vm-12-abc" / "x.png") == tmp_path / ".shot.old-vm-12-abc" / "x.png"
    from core.leftovers import checkpoint_sibling
    from core.stage_folders import FINAL_NAME_TAGS

    cache = checkpoint_sibling(out, "ingest") / "cache" / "0a1b.npz"     # the ingest's landmark cache: its own
    assert shown_path(cache) == cache
    for tag in FINAL_NAME_TAGS:                             # a run's checkpoint that keeps files under final names
        kept = checkpoint_sibling(out, tag) / out.name / "ring02" / "0000.exr"
        assert shown_path(kept) == out / "ring02" / "0000.exr", tag
        # the checkpoint's own files are shown where they are (a swap's tracking.npz on a full disk was named
        # OUT's folder's tracking.npz, a file no run writes)
        own = checkpoint_sibling(out, tag) / "tracking.npz"
        assert shown_path(own) == own, tag


@pytest.mark.parametrize(("content", "stage", "found"), [
    ({STAGE_MARKER: '{"stage": "rig"}'}, "retarget", "rig"),
    ({"manifest.json": '{"stage": "rig", "schema_version": 1}'}, "retarget", "rig"),
    ({"manifest.json": '{"stage": "retarget"}'}, "rig", "retarget"),
    ({"manifest.json": '{"stage": "capture_ingest"}'}, "fit", "capture ingest"),
    ({"session/calibration.json": "{}", "ground_truth/mesh.ply": ""}, "capture ingest", "capture synth"),
    ({"report.html": "", "actor/manifest.json": "{}"}, "rig", "demo"),
    ({"notes.txt": "mine"}, "rig", "unknown"),
    ({"manifest.json": "[1, 2]"}, "rig", "unknown"),
])
def test_another_stages_folder_is_refused_unless_forced(tmp_path, content, stage, found):
    out = tmp_path / "r2"
    for name, text in content.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    assert folder_stage(out) == found
    with pytest.raises(StageFolderError, match="--force") as e:
        check_stage_out(out, stage)
    assert "\n" not in str(e.value) and str(out) in str(e.value)
    assert check_stage_out(out, stage, force=True) == out


@pytest.mark.parametrize("make", ["missing", "empty", "same stage"])
def test_new_empty_or_same_stage_folder_is_accepted(tmp_path, make):
    out = tmp_path / "x"
    if make != "missing":
        out.mkdir()
    if make == "same stage":
        (out / STAGE_MARKER).write_text('{"stage": "fit"}')
    assert check_stage_out(out, "fit") == out


def test_refused_even_with_force(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StageFolderError, match="is a file"):
        check_stage_out(f, "rig", force=True)
    rig = tmp_path / "rig"
    rig.mkdir()
    for out in (rig, tmp_path):
        with pytest.raises(StageFolderError, match="would delete the input"):
            check_stage_out(out, "retarget", force=True, inputs=[rig])
    assert check_stage_out(rig / "sub", "retarget", inputs=[rig]) == rig / "sub"    # inside an input: fine
    monkeypatch.chdir(rig)
    with pytest.raises(StageFolderError, match="current folder"):
        check_stage_out(Path("."), "rig", force=True)


def test_stale_temporary_folders_of_dead_runs_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    out = tmp_path / "a"
    host = _host()
    stale = tmp_path / f".a.tmp-{host}-{dead}-abc123"
    stale.mkdir()
    (stale / "animation.npz").write_bytes(b"half")
    live = tmp_path / f".a.tmp-{host}-{os.getpid()}-xyz"    # a run in progress (this process): untouched
    live.mkdir()
    remote = tmp_path / f".a.tmp-otherhost-{dead}-xyz"     # another machine's run: this one cannot tell
    remote.mkdir()
    aside = tmp_path / f".a.old-{host}-{dead}-def456"      # killed mid-swap: the old result, renamed aside
    aside.mkdir()
    (aside / "manifest.json").write_text("old")
    assert sorted(p.name for p in clean_stale(out)) == sorted([stale.name, aside.name])
    assert not stale.exists() and live.exists() and remote.exists()
    assert (out / "manifest.json").read_text() == "old", "the old result was not put back"


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path):
    """Three `doppel rig --out same` started at once all reported success, each replacing the last one's folder
    (and each registered as an asset). A run finds an older live run's temporary folder and stops."""
    from core.stage_folders import StageFolderError

    out, host, other = tmp_path / "same", _host(), os.getppid()          # the parent: alive while this runs
    older = tmp_path / f".same.tmp-{host}-{other}-{time.time_ns() - 10**9}_abc"
    older.mkdir()
    with pytest.raises(StageFolderError, match=rf"--out .*same: another run is writing it \(process {other} on "
                                               rf"{host}, since .*\); wait for it .*delete .*{older.name}"):
        with staged_stage_dir(out, "rig"):
            pytest.fail("the second run went on")
    assert sorted(p.name for p in tmp_path.iterdir()) == [older.name]     # its own temporary folder removed
    older.rmdir()
    newer = tmp_path / f".same.tmp-{host}-{other}-{time.time_ns() + 10**12}_abc"   # started after this one:
    newer.mkdir()                                                                  # that run is the one refused
    with staged_stage_dir(out, "rig") as tmp:
        (tmp / "rig.npz").write_bytes(b"mine")
    assert (out / "rig.npz").read_bytes() == b"mine"
    newer.rmdir()
    remote = tmp_path / f".same.tmp-otherhost-{other}-{time.time_ns() - 10**9}_abc"   # cannot be told dead
    remote.mkdir()
    with pytest.raises(StageFolderError, match="process .* on otherhost"):
        with staged_stage_dir(out, "rig"):
            pass
    assert (out / "rig.npz").read_bytes() == b"mine"


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from core.stage_folders import staged_stage_dir
    with staged_stage_dir(Path(sys.argv[1]), "retarget") as tmp:
        (tmp / "animation.npz").write_bytes(b"NEW animation")
        Path(sys.argv[2]).write_text("ready")
        time.sleep(60)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_the_old_result_whole(old_result, tmp_path, sig):
    before = _tree(old_result)
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(old_result), str(ready)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "the child never reached the middle of its run"
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _tree(old_result) == before
    with staged_stage_dir(old_result, "retarget") as tmp:    # the next run cleans up after the killed one
        (tmp / "manifest.json").write_text("next")
    assert _siblings(old_result) == ["ready"]


def test_temporary_files_of_killed_writers_are_removed_by_the_next_one(tmp_path):
    """``temp_sibling``: a temporary file named after its output and owner, keeping the output's suffix; the next
    one made for the same output removes those of dead processes here, never a live run's or another host's."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    out, host = tmp_path / "walk.fbx", _host()
    killed = tmp_path / f".walk.fbx.tmp-{host}-{dead}-{time.time_ns()}_abc123.fbx"
    live = tmp_path / f".walk.fbx.tmp-{host}-{os.getppid()}-{time.time_ns()}_def456.fbx"
    remote = tmp_path / f".walk.fbx.tmp-otherhost-{dead}-{time.time_ns()}_ghi789.fbx"
    other = tmp_path / f".run.fbx.tmp-{host}-{dead}-{time.time_ns()}_jkl012.fbx"
    signing = tmp_path / f".{killed.name}.tmp-{host}-{dead}-{time.time_ns()}_mno345.fbx"   # its copy being signed
    for p in (killed, live, remote, other, signing):
        p.write_bytes(b"half an export")
    mine = temp_sibling(out)
    assert not signing.exists()
    assert mine.name.startswith(f".walk.fbx.tmp-{host}-{os.getpid()}-") and mine.suffix == ".fbx" and mine.is_file()
    assert not killed.exists() and live.exists() and remote.exists() and other.exists()
    assert shown_path(mine) == out
    assert temp_files_of(out) == sorted([live, remote, mine])
    folder = temp_sibling(tmp_path / "frames", directory=True)
    assert folder.is_dir() and shown_path(folder) == tmp_path / "frames"


def test_an_out_where_this_user_may_not_write_is_refused_before_the_work(tmp_path, monkeypatch):
    """(A stage found out only when it wrote its outputs: after its work.) The nearest existing folder of OUT is
    checked; root ignores permissions, so os.access stands in."""
    locked, real_access = tmp_path / "locked", os.access
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: not (m & os.W_OK and str(p) == str(locked))
                        and real_access(p, m, *a, **k))
    for out in (locked / "a", locked / "a" / "b"):
        with pytest.raises(PermissionError, match=rf"--out .*: no write permission in {locked}"):
            check_stage_out(out, "rig")
    assert check_stage_out(tmp_path / "free" / "a", "rig") == tmp_path / "free" / "a"


@pytest.mark.parametrize("name", ["s" * 246 + ".fbx", "é" * 123 + ".fbx"])       # 250 and 250 bytes
def test_an_output_whose_name_is_near_the_file_systems_limit_is_written(tmp_path, name):
    """A valid name of 250 bytes failed with "File name too long": its temporary sibling (``.NAME.tmp-HOST-...``)
    was longer than the file system takes. Such names now carry a head of the name and its hash, and the
    clean-up of killed runs, the second-writer check and ``temp_files_of`` still know whose they are."""
    from core.stage_folders import sole_writer
    from core.storage import atomic_write_bytes

    out = tmp_path / name
    mine = temp_sibling(out)
    assert len(mine.name.encode()) <= 255 and mine.suffix == ".fbx" and temp_files_of(out) == [mine]
    assert temp_sibling(tmp_path / "other.fbx") not in temp_files_of(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    killed = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{dead}-")
    mine.rename(killed)
    assert clean_stale(out) == [killed] and not killed.exists()
    with sole_writer(out):
        atomic_write_bytes(out, b"an export")
    assert out.read_bytes() == b"an export" and [p.name for p in tmp_path.iterdir() if p.name != "other.fbx"
                                                   and not p.name.startswith(".other")] == [name]
    with staged_stage_dir(tmp_path / name.replace(".fbx", ""), "rig") as folder:
        (folder / "rig.npz").write_bytes(b"x")
    assert (tmp_path / name.replace(".fbx", "") / "rig.npz").is_file()


def test_frames_written_into_a_runs_own_temporary_folder_do_not_list_it(tmp_path, monkeypatch):
    """Signing each frame of a sequence being written made a temporary sibling per frame, and each one listed the
    whole folder for killed runs' leftovers: N^2/2 names for N frames (4000 frames: 31 s, now 1.6 s). In a
    temporary folder this process made, nobody else's leftovers can be."""
    import core.stage_folders as sf

    folder = temp_sibling(tmp_path / "shot", directory=True)
    calls = []
    monkeypatch.setattr(sf, "clean_stale", lambda out: calls.append(out) or [])
    for i in range(3):
        (folder / f"f{i}.png").write_bytes(b"")
        temp_sibling(folder / f"f{i}.png")
    assert calls == []
    temp_sibling(tmp_path / "plate.mov")                       # anywhere else: killed runs are looked for
    assert calls == [tmp_path / "plate.mov"]


def test_a_killed_process_not_yet_reaped_is_not_running(tmp_path):
    """A run killed under a parent that never reaps it (a container whose first process reaps no orphans) stays a
    zombie: its temporary folder was listed as "running" for ever, never cleaned by the next writer nor purged."""
    import subprocess
    import time

    from core.stage_folders import current_host, running_here

    child = subprocess.Popen(["sleep", "30"])
    assert running_here(current_host(), child.pid)
    child.kill()
    for _ in range(200):                                # dead but not waited for: a zombie
        with open(f"/proc/{child.pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        time.sleep(0.01)
    try:
        assert not running_here(current_host(), child.pid)
    finally:
        child.wait()
