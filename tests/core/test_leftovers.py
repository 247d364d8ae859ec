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
