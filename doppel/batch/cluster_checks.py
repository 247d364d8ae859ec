"""Connecting `doppel batch` to an existing Ray cluster (``--address``) with one clear line when it cannot be done.

Two ways it went wrong with no useful word (found with a cluster one artist started on a workstation, `ray start
--head`, and another artist's `doppel batch --address HOST:PORT`):

- the cluster takes only drivers that carry its token (Ray's token authentication): Ray printed a warning a second
  for half a minute, then "Failed to connect", never saying a token was missing;
- with the token, the driver was killed by SIGABRT and nothing else: a driver on the cluster's own machine writes
  its logs into the cluster's session folder, which only the user who started it may write (Ray runs one user's
  drivers per machine).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from core.errors import DoppelError


class ClusterError(DoppelError):
    """`doppel batch --address` cannot use the cluster (one line: why, and what to do)."""


def check_local_session(address: str) -> None:
    """ClusterError when ``address`` ("auto" or HOST:PORT) is a cluster on this machine whose session folder this
    user cannot write: Ray would abort the driver with no message."""
    if address.startswith("ray://"):
        return                                        # Ray Client: the driver runs on the cluster, not here
    host = address.rpartition(":")[0] if address != "auto" else None
    if host is not None and not _is_this_machine(host):
        return
    session = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "session_latest"
    closed = [d for d in (session / "logs", session / "logs" / "events")        # Ray makes the first 0777, not
              if d.is_dir() and not os.access(d, os.W_OK | os.X_OK)]           # the second
    if not closed:
        return
    owner = _owner(closed[0])
    raise ClusterError(f"--address {address}: the Ray cluster on this machine was started by {owner}, and Ray writes "
                       f"every driver's logs into its session folder ({session.resolve()}), which this user may not "
                       f"write (Ray runs one user's drivers per machine): run `doppel batch` as {owner}, from another "
                       "machine of the cluster, or leave --address out to run on a cluster of your own")


def _is_this_machine(host: str) -> bool:
    import socket

    import psutil

    try:
        ips = {a[4][0] for a in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    mine = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    return bool(ips & (mine | {"127.0.0.1", "::1"}))


def _owner(path: Path) -> str:
    from core.group_sharing import user_name

    try:
        return user_name(path.stat().st_uid)
    except OSError:
        return "another user"


def connect(ray, address: str, **kwargs) -> None:
    """``ray.init(address=address, **kwargs)`` with Ray's own C++ warnings (one a second while it retries) held back
    and read when it fails; ClusterError (one line) then, naming a missing authentication token when that is why."""
    with _stderr_held() as said:
        try:
            ray.init(address=address, **kwargs)
            return
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
    if "InvalidAuthToken" in said() or "AuthenticationError" in said():
        mode = os.environ.get("RAY_AUTH_MODE", "") or "unset"
        raise ClusterError(f"--address {address}: the cluster refused this driver's authentication token (Ray's token "
                           f"authentication; RAY_AUTH_MODE is {mode}): set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
                           "RAY_AUTH_TOKEN_PATH) to the cluster's token, the one in ~/.ray/auth_token of the account "
                           "that started it; nothing was run")
    raise ClusterError(f"--address {address}: cannot connect to a Ray cluster ({first}); nothing was run")


@contextlib.contextmanager
def _stderr_held():
    """Redirect file descriptor 2 (where Ray's C++ core writes) to a temporary file for the block; yields a function
    that returns what was written. What was held is dropped: a successful connection's warnings are Ray's own
    retries, and a failure is reported by the caller."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        text.append(held.read().decode("utf-8", "replace"))
