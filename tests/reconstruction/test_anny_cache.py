"""Anny's model cache stays whole (reconstruction/body_models/anny_cache.py): a file cut short by a killed run is
built again instead of failing every later command, processes starting together build it once, and a disk that
cannot take it says so."""

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reconstruction.body_models import anny_cache
from reconstruction.body_models.anny_cache import build_lock, remove_incomplete, safetensors_complete, whole_cache

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, n: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"a": torch.arange(n, dtype=torch.float32), "b": torch.ones(3, 4)}, str(path),
              metadata={"m": "x"})
    return path


def test_only_a_whole_safetensors_file_is_complete(tmp_path):
    whole = _write(tmp_path / "v1" / "whole.safetensors")
    assert safetensors_complete(whole)
    data = whole.read_bytes()
    for name, cut in [("short", data[:-1]), ("header_only", data[:60]), ("empty", b""),
                      ("longer", data + b"\0"), ("garbage", b"\xff" * 64)]:
        (tmp_path / "v1" / f"{name}.safetensors").write_bytes(cut)
        assert not safetensors_complete(tmp_path / "v1" / f"{name}.safetensors"), name
    removed = remove_incomplete(tmp_path)
    assert sorted(p.stem for p in removed) == ["empty", "garbage", "header_only", "longer", "short"]
    assert [p.name for p in (tmp_path / "v1").iterdir()] == ["whole.safetensors"]


def test_a_second_process_waits_for_the_build_under_way(tmp_path, caplog):
    held = threading.Event()

    def builder():
        with build_lock(tmp_path):
            held.set()
            time.sleep(0.6)

    t = threading.Thread(target=builder)
    t.start()
    held.wait(5)
    t0 = time.monotonic()
    with caplog.at_level("WARNING"), whole_cache(tmp_path):
        waited = time.monotonic() - t0
    t.join()
    assert waited > 0.4
    assert "another process is building anny's cache" in caplog.text


def test_a_disk_filling_while_anny_writes_is_a_disk_full_error_and_leaves_no_cut_file(tmp_path, monkeypatch):
    monkeypatch.setattr(anny_cache, "CACHE_BYTES", 0)       # past the room check: the disk fills during the build
    part = tmp_path / "v14" / "load_data_x.safetensors"
    with pytest.raises(OSError) as e, whole_cache(tmp_path):
        _write(part)
        part.write_bytes(part.read_bytes()[:100])
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path)
    assert "ANNY_CACHE_DIR" in e.value.strerror
    assert not part.exists()
    with pytest.raises(ValueError, match="other"), whole_cache(tmp_path):     # any other failure is anny's own
        raise ValueError("other")


def test_a_disk_without_room_is_refused_before_the_build(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    ran = []
    with pytest.raises(OSError, match="needs about 900 MB and 1 MB are free"), whole_cache(tmp_path):
        ran.append(1)
    assert not ran
    _write(tmp_path / "v14" / "load_data_x.safetensors")    # a cache there already: nothing may need writing
    with whole_cache(tmp_path):
        ran.append(1)
    assert ran == [1]


def test_a_cache_folder_without_a_lock_file_is_still_read(tmp_path, monkeypatch):
    import filelock

    def refuse(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", self.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    ran = []
    with whole_cache(tmp_path):
        ran.append(1)
    assert ran == [1]


def _default_cache() -> Path:
    import anny.paths

    from reconstruction.body_models.anny_model import load_anny

    load_anny()                        # builds the default cache where this machine keeps it, if it is not there
    return Path(anny.paths.get_anny_cache_path())


LOAD = ("import sys, numpy as np; from reconstruction.body_models.anny_model import AnnyModel; "
        "np.save(sys.argv[1], AnnyModel(dtype=__import__('torch').float64).bind_state(None).vertices)")


def test_a_cache_file_a_killed_run_cut_short_is_built_again_by_one_of_two_processes(tmp_path):
    """Two processes start together on a cache whose compact model file a killed run left cut short: before, both
    failed with "SafetensorError: incomplete metadata" (and every later command did too); now one rebuilds the file
    while the other waits, and both load the same model as the machine's whole cache."""
    from reconstruction.body_models.anny_model import AnnyModel

    cache = _default_cache()
    files = sorted(cache.glob("v*/*.safetensors"))
    compact = [p for p in files if p.name.startswith("build_compact_model_data_")]
    assert compact, files
    mine = tmp_path / "cache"
    for p in files:
        (mine / p.parent.name).mkdir(parents=True, exist_ok=True)
        if p in compact:
            (mine / p.parent.name / p.name).write_bytes(p.read_bytes()[: p.stat().st_size // 3])
        else:
            os.symlink(p, mine / p.parent.name / p.name)     # the big files are read, never written
    env = {**os.environ, "ANNY_CACHE_DIR": str(mine), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", LOAD, str(tmp_path / f"v{i}.npy")], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = "".join(outs)
    assert said.count("is incomplete") == 1 and said.count("another process is building") <= 1, outs
    for p in compact:
        assert safetensors_complete(mine / p.parent.name / p.name)
    ref = AnnyModel(dtype=torch.float64).bind_state(None).vertices
    for i in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"v{i}.npy"), ref, atol=1e-9)
