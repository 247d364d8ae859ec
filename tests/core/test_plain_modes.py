"""Outputs get the mode a plain open() or mkdir() gives, through the umask or the folder's default ACL: temporary
files were made 0600 by mkstemp, then chmod-ed to the umask's mode, which on a folder shared by a default ACL (a
NAS's way) set the ACL's mask and took the group's write access away; SQLite made the index 0644 whatever either
said."""

import os
import struct

import pytest

from core.stage_folders import staged_stage_dir, temp_sibling
from core.storage import atomic_write_bytes


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _default_acl_for_group(folder, gid: int) -> None:
    """Give ``folder`` a default ACL (the binary form of `setfacl -d -m g:GID:rwx,m::rwx`): files made in it grant
    group ``gid`` read and write whatever the umask."""
    none = 0xFFFFFFFF
    entries = [(0x01, 7, none), (0x04, 5, none), (0x08, 7, gid), (0x10, 7, none), (0x20, 5, none)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(folder, "system.posix_acl_default", value)
    except OSError as e:
        pytest.skip(f"this file system takes no POSIX ACLs ({e.strerror})")


def test_outputs_keep_what_a_default_acl_gives_the_group(tmp_path, umask):
    folder = tmp_path / "shared"
    folder.mkdir()
    _default_acl_for_group(folder, os.getegid() + 1)
    atomic_write_bytes(folder / "params.json", b"{}")
    with staged_stage_dir(folder / "rig", "rig") as d:
        atomic_write_bytes(d / "rig.npz", b"npz")
    tmp = temp_sibling(folder / "double.fbx")
    for p in (folder / "params.json", folder / "rig", folder / "rig" / "rig.npz", tmp):
        assert os.stat(p).st_mode & 0o060 == 0o060, p          # the ACL mask: rw for the named group


def test_a_new_index_follows_the_umask(tmp_path, umask):
    from assets.workspace import Workspace, init_workspace

    os.umask(0o002)                              # a team's umask: group-writable files
    ws = init_workspace(tmp_path / "ws")
    assert os.stat(ws.index_path).st_mode & 0o777 == 0o664
    os.umask(0o022)
    ws = Workspace.init(tmp_path / "ws2")
    assert os.stat(ws.index_path).st_mode & 0o777 == 0o644
