"""`core.leftovers`: a run's working folder beside its output (not in the system's temporary folder, out of a
consent purge's reach), and what a killed run leaves there, told from another output's."""

import os
import subprocess
import sys
import tempfile

from core.leftovers import checkpoint_sibling, leftovers_of, work_folder
from core.stage_folders import temp_sibling


def test_the_working_folder_is_beside_the_output_and_tempfiles_default_inside_the_block(tmp_path):
    out = tmp_path / "sh010.fbx"
    before = tempfile.gettempdir()
    with work_folder(out, temp_default=True) as work:
        assert work.parent == tmp_path and work.name.startswith(".sh010.fbx.work-")
        made = tempfile.mkdtemp(prefix="doppel_blender_")
        assert os.path.dirname(made) == str(work)
        (left,) = leftovers_of(out)
        assert left.path == work and left.kind == "temporary" and left.alive
    assert tempfile.gettempdir() == before and not work.exists()


def test_a_killed_runs_working_folder_is_removed_by_the_next_writer_of_the_output(tmp_path):
    out = tmp_path / "sh010.fbx"
    code = ("import os, signal, sys; from core.leftovers import work_folder\n"
            "with work_folder(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code, str(out)]).returncode == -9
    (dead,) = leftovers_of(out)
    assert ".work-" in dead.path.name and not dead.alive
    mine = temp_sibling(out)                              # the next export to that name
    assert [p.path for p in leftovers_of(out)] == [mine]
    checkpoint_sibling(out.with_name("sh010.fbx.mov")).mkdir()       # another output's checkpoint: not this one's
    assert [p.path for p in leftovers_of(out)] == [mine]


def test_leftovers_are_found_listed_and_the_stopped_ones_cleaned(tmp_path, capsys):
    from core.leftovers import find_leftovers, owned_by, record_owner
    from tests.cli_runner import run_cli

    shots = tmp_path / "shots" / "sq010"
    shots.mkdir(parents=True)
    code = ("import os, signal, sys; from core.stage_folders import temp_sibling\n"
            "p = temp_sibling(sys.argv[1], directory=True); (p / 'f.png').write_bytes(b'x' * 5000)\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code, str(shots / "sh010")]).returncode == -9
    ck = checkpoint_sibling(shots / "sh020", "swap")
    (ck / "sh020").mkdir(parents=True)
    with owned_by("c-1", "jane"):
        record_owner(ck)
    mine = temp_sibling(shots / "sh030")                       # this process writes it now
    found = {f.leftover.path: f for f in find_leftovers(tmp_path)}
    names = sorted(p.name for p in found)
    assert len(names) == 3 and names[0].startswith(".sh010.tmp-") and names[1] == ".sh020.swap.checkpoint"
    assert names[2].startswith(".sh030.tmp-")
    assert found[ck].state == "stopped" and found[mine].state == "running"
    assert [f.output for f in found.values() if f.leftover.path == ck] == [shots / "sh020"]

    code, out, err = run_cli(capsys, "assets", "leftovers", tmp_path)
    said = " ".join(out.split())
    assert code == 0 and "leftovers: 3," in said and "jane (c-1)" in said, said + err
    code, out, _ = run_cli(capsys, "assets", "leftovers", tmp_path, "--clean")
    assert code == 0 and ck.is_dir() and mine.exists() and len(find_leftovers(tmp_path)) == 2
    code, out, _ = run_cli(capsys, "assets", "leftovers", tmp_path, "--clean", "--checkpoints")
    assert code == 0 and not ck.exists() and [f.leftover.path for f in find_leftovers(tmp_path)] == [mine]
    code, _, err = run_cli(capsys, "assets", "leftovers", tmp_path, "--checkpoints")
    assert code == 1 and "--checkpoints goes with --clean" in err
