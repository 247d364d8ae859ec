"""Caches for a user with no writable home and no right to write beside the code (a render node's account, a
site-wide install): numba's compiled skinning kernel and anny's model data. Before, numba raised "cannot cache
function '_lbs_kernel': no locator available" at import (every command that poses a rig failed) and anny failed
with "Permission denied" making ~/.cache/anny. Checked for real as an unprivileged user in the stop's note; here
with the failures simulated."""

from __future__ import annotations

import os
import stat

import pytest

import core.runtime as runtime


@pytest.fixture()
def tmp_root(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path


def test_a_private_cache_folder_is_this_users_alone(tmp_root):
    folder = runtime.private_cache_folder("numba")
    assert folder == str(tmp_root / f"doppel-numba-{os.getuid()}")
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    os.chmod(folder, 0o777)                       # others may write in it: what is loaded from it is not ours
    assert runtime.private_cache_folder("numba") is None
    (tmp_root / "elsewhere").mkdir(mode=0o700)
    os.symlink(tmp_root / "elsewhere", tmp_root / f"doppel-anny-{os.getuid()}")
    assert runtime.private_cache_folder("anny") is None                       # a link planted beforehand


def test_the_kernel_is_cached_in_the_private_folder_when_numba_has_no_locator(tmp_root, monkeypatch):
    from rigging import lbs_kernel

    calls = []

    def njit(**options):
        def wrap(fn):
            calls.append((options.get("cache"), lbs_kernel.numba.config.CACHE_DIR))
            if options.get("cache") and not lbs_kernel.numba.config.CACHE_DIR:
                raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
            return fn
        return wrap

    monkeypatch.setattr(lbs_kernel, "njit", njit)
    monkeypatch.setattr(lbs_kernel.numba.config, "CACHE_DIR", "")
    assert lbs_kernel._cached_njit(len, parallel=True) is len
    assert calls == [(True, ""), (True, str(tmp_root / f"doppel-numba-{os.getuid()}"))]


def test_anny_is_pointed_at_a_writable_cache(tmp_path, monkeypatch):
    import anny.paths

    from reconstruction.body_models.anny_model import _usable_cache

    (tmp_path / "home-is-a-file").write_text("")
    monkeypatch.setattr(anny.paths, "_ANNY_CACHE_DIR", [tmp_path / "home-is-a-file" / ".cache" / "anny"])
    monkeypatch.delenv("ANNY_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _usable_cache()
    assert anny.paths.get_anny_cache_path() == tmp_path / "xdg" / "anny"
    monkeypatch.setattr(anny.paths, "_ANNY_CACHE_DIR", [tmp_path / "home-is-a-file" / "anny"])
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "home-is-a-file" / "anny"))   # the user's choice stands
    _usable_cache()
    assert anny.paths.get_anny_cache_path() == tmp_path / "home-is-a-file" / "anny"
