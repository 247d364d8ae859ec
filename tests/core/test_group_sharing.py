"""core.group_sharing: what a group-shared folder (group-writable, set-group-ID) asks of the files made in it."""

import os
import stat

import pytest

from core import group_sharing as gs
from core.stage_folders import staged_stage_dir
from core.storage import atomic_write_bytes, new_temp_folder


@pytest.fixture
def umask():
    """Run with a umask of 022 and give the test's process its own back afterwards (adopt_group_umask is
    process-wide)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _shared(path, mode=0o2775):
    path.mkdir(exist_ok=True)
    os.chmod(path, mode)
    return path


def test_a_folder_is_shared_when_group_writable_and_set_group_id(tmp_path):
    assert gs.sharing_gid(_shared(tmp_path / "a", 0o775)) is None          # group-writable only
    assert gs.sharing_gid(_shared(tmp_path / "b", 0o2755)) is None         # set-group-ID only
    assert gs.sharing_gid(_shared(tmp_path / "c", 0o2770)) == os.stat(tmp_path / "c").st_gid
    assert gs.sharing_gid(tmp_path / "missing") is None


def test_adopting_the_group_umask_clears_only_the_group_bits(tmp_path, umask, monkeypatch):
    os.umask(0o027)
    assert not gs.adopt_group_umask(_shared(tmp_path / "private", 0o755))
    assert os.umask(0o027) == 0o027
    assert gs.adopt_group_umask(_shared(tmp_path / "shared"))
    assert os.umask(0o022) == 0o007                                         # others keep what the user chose
    os.umask(0o027)
    monkeypatch.setattr(gs, "_member", lambda gid: False)                # a reviewer outside the group
    assert not gs.adopt_group_umask(tmp_path / "shared")
    assert os.umask(0o022) == 0o027


def test_secrets_are_the_owners_alone_unless_the_folder_is_shared_with_their_group(tmp_path, monkeypatch):
    private, shared = _shared(tmp_path / "private", 0o755), _shared(tmp_path / "shared")
    for folder in (private, shared):
        (folder / "key").write_bytes(b"k")
    os.chmod(private / "key", 0o600)
    assert gs.secret_mode_problem(private / "key", private) is None
    os.chmod(private / "key", 0o640)
    assert "chmod 600" in gs.secret_mode_problem(private / "key", private)
    assert gs.secret_mode(private) == 0o600 and gs.secret_folder_mode(private) == 0o700
    os.chmod(shared / "key", 0o640)
    assert gs.secret_mode_problem(shared / "key", shared) is None
    assert gs.secret_mode(shared) == 0o640 and gs.secret_folder_mode(shared) == 0o2770
    os.chmod(shared / "key", 0o644)
    assert "readable by everyone" in gs.secret_mode_problem(shared / "key", shared)
    os.chmod(shared / "key", 0o640)
    monkeypatch.setattr(gs, "sharing_gid", lambda folder: os.stat(shared).st_gid + 1)   # shared with another group
    assert "not the shared folder's group" in gs.secret_mode_problem(shared / "key", shared)


def test_a_new_folder_keeps_the_set_group_id_bit_it_inherited(tmp_path, umask):
    """mkdtemp then chmod(0o755) cleared the bit a shared parent gave: the files written in it then took the
    writer's own group instead of the team's. (Temporary folders are now made with mkdir()'s own mode.)"""
    parent = _shared(tmp_path / "shared")
    assert os.stat(new_temp_folder(parent, ".x.tmp-")).st_mode & stat.S_ISGID
    gs.adopt_group_umask(parent)
    with staged_stage_dir(parent / "rig", "rig") as d:
        atomic_write_bytes(d / "rig.npz", b"data")
    st = os.stat(parent / "rig")
    assert st.st_mode & stat.S_ISGID and st.st_mode & 0o070 == 0o070 and st.st_gid == os.stat(parent).st_gid
    assert os.stat(parent / "rig" / "rig.npz").st_mode & 0o060 == 0o060


def test_sharing_a_tree_gives_it_the_group_and_lists_what_is_not_this_users(tmp_path):
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True, mode=0o755)
    (root / "sub" / "data").write_bytes(b"d")
    (root / "key").write_bytes(b"k")
    os.chmod(root / "sub" / "data", 0o644)
    os.chmod(root / "key", 0o600)
    gid = os.getegid()
    report = gs.share_tree(root, gid, {root / "key"})
    assert gs.sharing_gid(root) == gid and report.changed == 4 and not report.others
    assert os.stat(root / "sub").st_mode & 0o7777 == 0o2775
    assert os.stat(root / "sub" / "data").st_mode & 0o777 == 0o664
    assert os.stat(root / "key").st_mode & 0o777 == 0o640
    assert gs.share_tree(root, gid, {root / "key"}).changed == 0            # again: nothing to do
    (root / "theirs").write_bytes(b"t")
    os.chmod(root / "theirs", 0o644)
    report = gs.ShareReport(gid)
    gs._share_one(root / "theirs", gid, False, os.stat(root / "theirs").st_uid + 1, report)   # as another user
    assert report.others == [root / "theirs"] and report.changed == 0


def test_a_stage_or_a_file_written_into_a_shared_folder_is_the_groups_outside_any_workspace(tmp_path, umask):
    """`doppel capture synth --out /proj/shared/...` with no workspace: under umask 022 its folders were 0755, so the
    other members could not replace or clean them."""
    from core.stage_folders import temp_sibling

    parent = _shared(tmp_path / "project")
    with staged_stage_dir(parent / "captures" / "day1", "synthetic_capture") as d:
        (d / "images").mkdir()
        (d / "images" / "cam0.png").write_bytes(b"png")
    for p in ("captures", "captures/day1", "captures/day1/images"):
        assert os.stat(parent / p).st_mode & 0o2070 == 0o2070, p
    assert os.stat(parent / "captures" / "day1" / "images" / "cam0.png").st_mode & 0o060 == 0o060
    os.umask(0o022)
    tmp = temp_sibling(parent / "double.fbx")
    tmp.write_bytes(b"fbx")
    assert os.umask(0o022) & 0o070 == 0


def test_another_member_asking_again_changes_nothing_and_is_not_refused(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    (root / "rigs").mkdir(parents=True)
    gid = os.getegid()
    gs.share_tree(root, gid, set())
    monkeypatch.setattr(gs.os, "geteuid", lambda: os.stat(root).st_uid + 1)   # not the owner, not root
    report = gs.share_tree(root, gid, set())
    assert report.changed == 0 and report.others == []
    os.chmod(root, 0o755)                                                    # unshared: only its owner may share it
    with pytest.raises(PermissionError, match="only its owner"):
        gs.share_tree(root, gid, set())


@pytest.mark.parametrize("tag", ["swap", "shot"])
def test_a_runs_checkpoint_in_a_shared_folder_is_the_groups_from_its_first_file(tmp_path, umask, tag):
    """A shot's (or a swap's) checkpoint was made before the stage's folder, under the artist's own umask: killed,
    it was 0700 with a 0600 key, and another member's --resume failed ("Permission denied: ...lock"). Real
    accounts (alice at umask 077 killed, bob resumed) showed it; this checks the modes."""
    from core.run_checkpoint import RunCheckpoint

    os.umask(0o077)
    shots = _shared(tmp_path / "shots")
    ck = RunCheckpoint(shots / "sh010", tag, {"k": 1}, resume=False, what=tag)
    assert os.stat(ck.folder).st_mode & 0o2070 == 0o2070
    assert all(os.stat(p).st_mode & 0o060 == 0o060 for p in ck.folder.iterdir())
    ck.release(remove=True)
