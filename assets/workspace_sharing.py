"""A workspace shared by a team: every member of one POSIX group writes it (``doppel init DIR --group G``).

A workspace is one account's by default: other users read and verify it, and a command that records what it
does is refused for them in one line (`Workspace.check_writable`). A studio's artists and render nodes working
on one workspace share it through a group instead:

- its root folder, and every folder in it, is group-writable and set-group-ID (``core.group_sharing``), so all
  that is made in it belongs to the group;
- its index (and so SQLite's WAL files, which take the index's mode) is group-writable;
- its secrets (the manifest key, the signing identity's private keys) are readable by the group and by no one
  else: every member signs in the workspace's name; ``doppel audit show`` says who did what (``user@host``);
- a process that opens it makes group-writable files (``core.group_sharing.adopt_group_umask``).

`share_workspace` turns an existing workspace (or a new one) into a shared one; its owner runs it (root may
too). Files of other users that lack the group's rights are listed, not changed: their owners (or an
administrator) run the ``chgrp``/``chmod`` the report prints. One ``workspace.share`` audit record says who
shared it with which group.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from assets import audit
from assets.manifest_signing import KEY_NAME
from assets.signing_keys import KEYS_DIR, ROOT_KEY_NAME, SIGNER_KEY_NAME
from assets.workspace import Workspace, WorkspaceError
from core.group_sharing import ShareReport, adopt_group_umask, group_label, share_tree, sharing_gid


def share_workspace(ws: Workspace, group: str) -> ShareReport:
    """Share the workspace ``ws`` with the POSIX group ``group`` (a name or a number); returns what changed.

    Raises WorkspaceError (one line) when the group does not exist, this user is not in it, or the workspace is
    already shared with another group (moving it is an administrator's ``chgrp -R``)."""
    gid = _group_id(group)
    current = sharing_gid(ws.root)
    if current is not None and current != gid:
        raise WorkspaceError(f"{ws.root}: already shared with group {group_label(current)}, not {group}; to move it "
                             f"to {group} an administrator runs `chgrp -R {group} {ws.root}`")
    if os.geteuid() != 0 and gid not in (os.getegid(), *os.getgroups()):
        raise WorkspaceError(f"--group {group}: this user is not a member of it (`id` lists yours); only a member "
                             "can give the workspace to a group")
    ws.check_writable()
    keys = ws.root / KEYS_DIR
    try:
        report = share_tree(ws.root, gid, {ws.root / KEY_NAME, keys / SIGNER_KEY_NAME, keys / ROOT_KEY_NAME})
    except PermissionError as e:
        raise WorkspaceError(f"{ws.root}: cannot share it ({e})") from None
    adopt_group_umask(ws.root)                # this process's own later files (the index's WAL) are the group's
    with ws.write() as con:
        audit.append(con, {"action": "workspace.share", "group": group_label(gid), "gid": gid,
                           "changed": report.changed, "left_to_their_owners": len(report.others)})
    return report


def _group_id(group: str) -> int:
    try:
        import grp
    except ImportError:
        raise WorkspaceError("--group: POSIX groups are not available on this system (Windows): share the "
                             "workspace's folder with the file server's own permissions") from None
    try:
        return grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise WorkspaceError(f"--group {group}: no such group on this machine (`getent group` lists them)") from None


def fix_commands(report: ShareReport) -> list[str]:
    """The commands the owners of ``report.others`` (or an administrator) run to finish sharing: one per path."""
    g = group_label(report.gid)

    def mode(p: Path) -> str:
        return "g+rwxs" if p.is_dir() else "640" if p.name in (KEY_NAME, SIGNER_KEY_NAME, ROOT_KEY_NAME) else "g+rw"
    return [f"chgrp {g} {shlex.quote(str(p))} && chmod {mode(Path(p))} {shlex.quote(str(p))}" for p in report.others]
