"""A full disk is named as one: the file the user will look for, ENOSPC, whatever library hid the OS error."""

from __future__ import annotations

import errno
import io
import os
from collections import namedtuple

import numpy as np
import pytest

from core.storage import FULL_DISK_BYTES, as_disk_full

_Usage = namedtuple("_Usage", "total used free")


def test_as_disk_full_names_the_published_file(tmp_path, monkeypatch):
    written, shown = tmp_path / ".out.x1/0001.png", tmp_path / "out/0001.png"
    e = as_disk_full(OSError(errno.ENOSPC, "No space left on device"), written, shown)
    assert e.errno == errno.ENOSPC and e.filename == str(shown)
    quiet = OSError("could not write the frame")                     # a writer that hides the errno
    monkeypatch.setattr("shutil.disk_usage", lambda p: _Usage(10 << 30, 10 << 30, FULL_DISK_BYTES - 1))
    assert as_disk_full(quiet, written, shown).errno == errno.ENOSPC
    monkeypatch.setattr("shutil.disk_usage", lambda p: _Usage(10 << 30, 1 << 30, 9 << 30))
    assert as_disk_full(quiet, written, shown) is quiet                # plenty of space: not a full disk
    other = ValueError("bad frame")
    assert as_disk_full(other, written, shown) is other
    denied = PermissionError(errno.EACCES, "Permission denied", str(written))
    assert as_disk_full(denied, written, shown) is denied
    quota = as_disk_full(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), written, shown)
    assert quota.errno == errno.EDQUOT and quota.filename == str(shown)
    said = as_disk_full(RuntimeError(f"blender: [Errno {errno.EDQUOT}] {os.strerror(errno.EDQUOT)}"), written, shown)
    assert said.errno == errno.EDQUOT and said.filename == str(shown)


def test_a_full_disk_under_a_plate_writer_names_the_frame_it_publishes(tmp_path, monkeypatch):
    import cv2

    from capture.plate_io import PlateWriter, probe_plate

    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"shot.{1001 + i}.png"), np.full((64, 96, 3), 40 * i, np.uint8))
    info = probe_plate(d)
    calls = []

    def full(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))    # as an encoder reports it: no file name
        cv2.imwrite(str(path), np.zeros((64, 96, 3), np.uint8))

    monkeypatch.setattr("capture.frame_files.write_frame", full)
    out = tmp_path / "out"
    with pytest.raises(OSError) as e, PlateWriter(out, info) as w:
        for _ in range(3):
            w.write(np.zeros((64, 96, 3), np.uint8))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out / "shot.1002.png")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_a_full_disk_under_c2pa_is_an_oserror_not_a_signing_failure():
    """c2pa turns a failed write of its output stream into "Io: Other: UntrackedPointer"; the OS error is kept."""
    from PIL import Image

    from assets import signing_keys as sk
    from assets.content_credentials import sign_stream

    anchor, chain, key, _ = sk.generate_chain("Studio")
    src = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(src, format="PNG")

    class Full(io.BytesIO):
        def write(self, data):
            if self.tell() + len(data) > 200:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    src.seek(0)
    with pytest.raises(OSError) as e:
        sign_stream(src, Full(), "shot.png", {"claim_generator_info": [{"name": "test"}], "assertions": []},
                    chain, key)
    assert e.value.errno == errno.ENOSPC


def test_a_swap_whose_side_folder_fails_leaves_no_plate(tmp_path):
    from doppel.face_swap.pipeline import withdrawn_on_failure

    out = tmp_path / "swapped.mp4"
    with pytest.raises(OSError), withdrawn_on_failure(out) as published:
        out.write_bytes(b"video")
        published()
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "swapped_swap/tracks.npz"))
    assert not out.exists()
    with pytest.raises(RuntimeError), withdrawn_on_failure(out):
        out.write_bytes(b"someone else's")                          # not published by this run: kept
        raise RuntimeError("before the plate was written")
    assert out.exists()


def test_a_full_disk_under_an_exporter_names_the_export(tmp_path):
    """The glTF writer's write_bytes and Blender's worker (its error comes back as text) on a full disk."""
    from assets.blender_worker import BlenderError
    from assets.export.common import staged_output

    out = tmp_path / "double.glb"
    with pytest.raises(OSError) as e, staged_output(out) as staged:
        staged.write_bytes(b"x")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out)
    with pytest.raises(OSError) as e, staged_output(tmp_path / "double.fbx"):
        raise BlenderError("Blender: export_fbx: OSError: [Errno 28] No space left on device")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "double.fbx")
    with pytest.raises(BlenderError, match="bad armature"), staged_output(tmp_path / "double.fbx"):
        raise BlenderError("Blender: export_fbx: bad armature")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_npz_is_built_in_memory_and_written_atomically(tmp_path):
    from core.storage import atomic_write_npz

    p = atomic_write_npz(tmp_path / "a.npz", x=np.arange(5), names=np.array(["a", "b"]))
    with np.load(p) as z:
        assert z["x"].tolist() == [0, 1, 2, 3, 4] and z["names"].tolist() == ["a", "b"]
    assert [q.name for q in tmp_path.iterdir()] == ["a.npz"]
