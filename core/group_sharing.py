"""Folders a team shares through one POSIX group: what a file made there must look like.

A folder is *group-shared* when it is group-writable and set-group-ID (``chmod 2775`` or ``2770``), the
convention for a project folder on a studio's file server: everything made under it belongs to its group (the
set-group-ID bit makes new files take the folder's group and new folders inherit the bit) and every member can
write it. Doppel's workspaces use this (`assets.workspace_sharing`); the rules live here because they are about
files, not about the index:

- a process working in a group-shared folder clears the group bits of its umask (``adopt_group_umask``): the
  outputs libraries write directly (Blender's FBX, OpenCV's frames, numpy's archives) and the folders made
  anywhere in a stage are then group-writable too, as under ``umask 002``; the umask's bits for others stay;
- secrets (signing keys) there are readable by the group and by no one else (``secret_mode``,
  ``secret_mode_problem``); outside such a folder, by their owner only (0600).

ACLs are neither read nor written here: a folder shared by a default ACL gives its group access to Doppel's
outputs on its own, as they are made with a plain open()'s mode (`core.storage.new_temp_file`). On Windows no
folder is group-shared (no set-group-ID bit), so secrets keep their owner-only rule there.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
SHARED_SECRET_MODE = 0o640            # the owner writes, the group reads, others nothing
SHARED_SECRET_FOLDER_MODE = 0o2770    # members make and replace the files in it (a lock, a renewed key)


def sharing_gid(folder: str | os.PathLike) -> int | None:
    """The group id ``folder`` is shared with (group-writable and set-group-ID), else None (also when missing)."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    shared = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISGID and st.st_mode & stat.S_IWGRP
    return st.st_gid if shared else None


def lock_mode(folder: str | os.PathLike) -> int:
    """The mode of a lock file in ``folder``: 0660 when it is group-shared (another member takes it too; gid 0, a
    folder shared with the root group, counts), else 0644."""
    return 0o660 if sharing_gid(folder) is not None else 0o644


def group_label(gid: int) -> str:
    """The group's name, else its number."""
    try:
        import grp  # POSIX only, as group sharing is

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def adopt_group_umask(folder: str | os.PathLike) -> bool:
    """In a group-shared ``folder`` this process may write as a member of its group (or as root), clear the group
    bits of this process's umask (files and folders made from now on are group-writable; others' bits unchanged);
    returns whether it did. Process-wide: a subprocess started afterwards (the Blender worker, Ray's local workers)
    inherits it. A reviewer outside the group keeps their umask."""
    gid = sharing_gid(folder)
    if gid is None or not _member(gid):
        return False
    mask = os.umask(0)
    os.umask(mask & ~0o070)
    return True


def _member(gid: int) -> bool:
    """Whether this process acts as a member of group ``gid`` (its group, a supplementary one, or root)."""
    if not hasattr(os, "getegid"):
        return False
    return os.geteuid() == 0 or gid == os.getegid() or gid in os.getgroups()


def secret_mode(folder: str | os.PathLike) -> int:
    """The mode of a secret kept in ``folder``'s tree whose top is ``folder``: 0640 when shared, else 0600."""
    return SHARED_SECRET_MODE if sharing_gid(folder) is not None else PRIVATE_FILE_MODE


def secret_folder_mode(folder: str | os.PathLike) -> int:
    """The mode of a folder of secrets under ``folder``: 02770 when ``folder`` is shared, else 0700."""
    return SHARED_SECRET_FOLDER_MODE if sharing_gid(folder) is not None else PRIVATE_FOLDER_MODE


def secret_mode_problem(path: str | os.PathLike, folder: str | os.PathLike) -> str | None:
    """Why the secret at ``path`` is readable by too many (None when it is not): others may never read it; its
    group may only when ``folder`` (the tree it belongs to) is shared with that very group."""
    st = os.stat(path)
    mode, gid = st.st_mode & 0o777, sharing_gid(folder)
    if gid is None:
        if mode & 0o077:
            return f"readable by others (mode {mode:o}); run `chmod 600 {path}`"
        return None
    if mode & 0o007:
        return f"readable by everyone, not only group {group_label(gid)} (mode {mode:o}); run `chmod o-rwx {path}`"
    if mode & 0o070 and st.st_gid != gid:
        return (f"readable by group {group_label(st.st_gid)}, not the shared folder's group {group_label(gid)} "
                f"(mode {mode:o}); run `chgrp {group_label(gid)} {path}`")
    return None


def unreadable_reason(path: str | os.PathLike) -> str:
    """Why this user cannot check ``path`` ("" when it can read it): another user's file, not readable by others
    (a shared folder's file seen by someone outside its group). A checker counts such a file as not checked."""
    if os.access(path, os.R_OK):
        return ""
    me = user_name(os.geteuid()) if hasattr(os, "geteuid") else "this user"
    return f"this user ({me}) may not read it (owner {user_name(os.stat(path).st_uid)}): not checked"


@dataclass
class ShareReport:
    """What `share_tree` changed, and the paths it could not change (another user's, without the group's rights)."""

    gid: int
    changed: int = 0
    others: list[Path] = field(default_factory=list)


def share_tree(root: Path, gid: int, secrets: set[Path]) -> ShareReport:
    """Give the tree under ``root`` to group ``gid``: every file and folder this user owns (all of them for root)
    takes the group; folders get g+rwx and the set-group-ID bit, files g+rw, ``secrets`` 0640. ``root`` itself last:
    its bits are what makes the tree shared (``sharing_gid``), so a failure half-way leaves it unshared.
    Symbolic links are not followed. Raises PermissionError when ``root`` is neither this user's nor already shared
    with ``gid``."""
    report = ShareReport(gid)
    me = os.geteuid()
    for folder, dirs, files in os.walk(root, topdown=True):
        for name in (*dirs, *files):
            path = Path(folder) / name
            _share_one(path, gid, path in secrets, me, report)
    st = os.stat(root)
    if me not in (0, st.st_uid) and sharing_gid(root) != gid:
        raise PermissionError(f"{root}: the folder is {user_name(st.st_uid)}'s; only its owner (or root) can share it")
    _share_one(root, gid, False, me, report)      # already shared with gid: nothing to change, whoever asks
    return report


def _share_one(path: Path, gid: int, secret: bool, me: int, report: ShareReport) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    want = ((st.st_mode & 0o7777) | 0o2070) if is_dir else (
        SHARED_SECRET_MODE if secret else (st.st_mode & 0o7777) | 0o060)
    if st.st_gid == gid and st.st_mode & 0o7777 == want:
        return
    if me not in (0, st.st_uid):
        report.others.append(path)
        return
    if st.st_gid != gid:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, want)           # after chown: a chown clears the set-group-ID bit
    report.changed += 1


def user_name(uid: int) -> str:
    """The account name of ``uid``, else its number (POSIX; the number on Windows)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)
