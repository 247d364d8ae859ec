"""A workspace shared by a group (`doppel init DIR --group G`): every member writes it and signs in its name;
someone outside the group still reviews and verifies what they may read, and is told what they may not."""

import json
import os
import stat
from types import SimpleNamespace

import pytest

from assets.manifest_signing import KEY_NAME, load_key
from assets.signing_keys import SIGNER_KEY_NAME, init_keys, load_identity
from assets.workspace import Workspace, WorkspaceError, init_workspace
from assets.workspace_sharing import fix_commands, share_workspace
from core.group_sharing import ShareReport, sharing_gid
from tests.cli_runner import run_cli


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def shared(tmp_path, umask):
    ws = init_workspace(tmp_path / "ws")
    share_workspace(ws, str(os.getegid()))
    os.umask(0o022)                         # as a member's next command starts: Workspace.open adopts it again
    return ws


def test_sharing_makes_the_index_and_folders_the_groups_and_the_secrets_group_readable(shared):
    gid = os.getegid()
    assert sharing_gid(shared.root) == gid
    assert os.stat(shared.index_path).st_mode & 0o060 == 0o060
    assert all(os.stat(shared.root / d).st_mode & 0o2070 == 0o2070 for d in ("rigs", "exports"))
    assert os.stat(shared.root / KEY_NAME).st_mode & 0o777 == 0o640
    assert load_key(shared.root).key_id                      # group-readable, and the workspace's group: accepted
    info = init_keys(shared, org="Team")
    assert os.stat(info.folder).st_mode & 0o7777 == 0o2770
    assert os.stat(info.folder / SIGNER_KEY_NAME).st_mode & 0o777 == 0o640
    assert load_identity(shared).org == "Team"
    with Workspace.open(shared.root).read() as con:
        rec = json.loads(con.execute("SELECT record FROM audit ORDER BY seq LIMIT 1").fetchone()[0])
    assert rec["action"] == "workspace.share" and rec["gid"] == gid


def test_a_workspace_shared_by_hand_signs_and_still_refuses_a_key_for_everyone(tmp_path, umask):
    """`chmod -R g+rwX` and `chmod g+s` on the folders, as an administrator does: the key was then group-readable
    and every command refused it ("readable by others; run chmod 600", which locks the group out)."""
    ws = Workspace.init(tmp_path / "ws")
    ws.manifest_key()
    os.chmod(ws.root, 0o2775)
    os.chmod(ws.root / KEY_NAME, 0o660)
    assert load_key(ws.root).key_id
    os.chmod(ws.root / KEY_NAME, 0o664)
    with pytest.raises(Exception, match="readable by everyone"):
        load_key(ws.root)


def test_a_members_outputs_are_group_writable_whatever_their_umask(shared):
    from core.stage_folders import staged_stage_dir
    from core.storage import atomic_write_bytes

    Workspace.open(shared.root)
    with staged_stage_dir(shared.root / "rigs" / "a", "rig") as d:
        (d / "sub").mkdir()
        (d / "sub" / "frame.png").write_bytes(b"png")       # as a library writes it: plain open, plain mkdir
    atomic_write_bytes(shared.root / "exports" / "a.glb", b"glb")
    for p in ("rigs/a", "rigs/a/sub"):
        st = os.stat(shared.root / p)
        assert st.st_mode & stat.S_ISGID and st.st_mode & 0o070 == 0o070 and st.st_gid == os.getegid(), p
    for p in ("rigs/a/sub/frame.png", "exports/a.glb"):
        assert os.stat(shared.root / p).st_mode & 0o060 == 0o060, p


def test_sharing_refuses_an_unknown_group_and_a_second_group(shared, monkeypatch):
    with pytest.raises(WorkspaceError, match="no such group"):
        share_workspace(shared, "no-such-group-here")
    monkeypatch.setattr("assets.workspace_sharing._group_id", lambda g: os.getegid() + 1)
    with pytest.raises(WorkspaceError, match="already shared with group"):
        share_workspace(shared, "another")


def test_paths_of_other_users_get_the_commands_their_owners_run(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / KEY_NAME).write_bytes(b"k")
    report = ShareReport(os.getegid(), others=[tmp_path / "d", tmp_path / KEY_NAME, tmp_path / "it's.glb"])
    lines = fix_commands(report)
    assert "chmod g+rwxs" in lines[0] and "chmod 640" in lines[1] and "'\"'\"'" in lines[2]   # shell-quoted


def test_init_group_on_the_command_line(tmp_path, umask, capsys, monkeypatch):
    code, out, _ = run_cli(capsys, "init", tmp_path / "ws", "--group", os.getegid())
    assert code == 0 and "shared with group" in out and sharing_gid(tmp_path / "ws") == os.getegid()
    monkeypatch.setenv("DOPPEL_WORKSPACE", str(tmp_path / "ws"))
    _, out, _ = run_cli(capsys, "doctor")
    assert "shared with group" in " ".join(out.split())


def test_a_batch_worker_makes_the_groups_files_too(shared, tmp_path):
    """A Ray worker never opens the workspace: its outputs followed its own umask (0644 files, 0755 folders the
    other members could not write into)."""
    from doppel.batch import worker

    task = SimpleNamespace(id="t", stage="rig", values={}, spec=SimpleNamespace(inputs=[]))
    state = tmp_path / "state"
    worker.write_record(task, state, "run", (), worker.task_key(task), 0.0)
    res = worker.run_task(task, None, [], str(state), "run", True, workspace=str(shared.root))
    assert res.skipped
    assert os.umask(0o022) & 0o070 == 0


def test_files_a_user_may_not_read_are_reported_not_fatal(shared, tmp_path, monkeypatch):
    """Someone outside the group reviewing or verifying a folder: one unreadable file (another member's, made under
    umask 077) stopped the whole review and the whole verify with "Permission denied"."""
    from assets import media_verify
    from assets.export_verify import verify_export
    from doppel.review.gather import stage_view

    folder = shared.root / "exports"
    for name in ("a.glb", "b.png"):
        (folder / name).write_bytes(b"x")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p).endswith(("a.glb", "b.png")) else real(p, m))
    r = verify_export(folder / "a.glb", shared)
    assert r.invalid and "may not read" in r.error
    r = media_verify.verify_file(folder / "b.png", shared)
    assert r.invalid and "may not read" in r.error and r.c2pa.state == "unchecked"
    view = stage_view(folder / "a.glb", "exports/a.glb", "export")
    assert view.files == [] and view.unreadable == 1


def test_without_posix_groups_doppel_still_imports_and_init_group_says_why():
    """grp and pwd are POSIX modules (absent on Windows, where artists run Maya): importing them at the top of the
    modules every command loads would stop Doppel from starting at all there."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['grp'] = sys.modules['pwd'] = None\n"
            "import doppel.cli, assets.workspace_sharing as s, core.group_sharing as g\n"
            "print(g.group_label(5))\n"
            "try:\n    s._group_id('artists')\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("5\nWorkspaceError --group: POSIX groups are not available"), out



def test_a_user_who_may_not_read_the_key_is_told_how_a_team_shares_a_workspace(tmp_path, monkeypatch):
    """A workspace shared by other means (a default ACL, group-writable folders) but not its key: the member's first
    command failed with a bare "Permission denied" on the key file."""
    from pathlib import Path

    ws = Workspace.init(tmp_path / "ws")
    ws.manifest_key()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if self.name == KEY_NAME else real(self))
    with pytest.raises(Exception, match="doppel init DIR --group GROUP"):
        load_key(ws.root)
