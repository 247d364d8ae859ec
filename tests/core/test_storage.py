import json

import pytest

from core.errors import ManifestError
from core.storage import (
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    content_key,
    read_manifest,
    sha256_bytes,
    sha256_file,
    stage_is_current,
    write_manifest,
)


def test_interrupted_write_keeps_old_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError), atomic_open(target, "wb") as f:
        f.write(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"], "temporary file left behind"


def test_atomic_write_replaces_and_hashes(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "hello")
    assert p.read_text() == "hello"
    assert sha256_file(p) == sha256_bytes(b"hello")
    assert sha256_bytes(b"hello") == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_atomic_write_into_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


def test_content_key_is_order_independent_and_sensitive():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key("stage", {"a": 1}) != content_key("other", {"a": 1})


def test_manifest_roundtrip_and_skip_logic(tmp_path):
    inp = tmp_path / "input.txt"
    inp.write_text("capture")
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "out.txt").write_text("result")
    m = write_manifest(stage, "fit", inputs={"capture": inp}, params={"iters": 10}, outputs={"result": "out.txt"})
    assert read_manifest(stage)["outputs"]["result"]["sha256"] == m["outputs"]["result"]["sha256"]
    assert stage_is_current(stage, "fit", {"capture": inp}, {"iters": 10})
    assert not stage_is_current(stage, "fit", {"capture": inp}, {"iters": 11})
    inp.write_text("another capture")
    assert not stage_is_current(stage, "fit", {"capture": inp}, {"iters": 10})
    inp.write_text("capture")
    (stage / "out.txt").write_text("tampered")
    assert not stage_is_current(stage, "fit", {"capture": inp}, {"iters": 10})


def test_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)
    atomic_write_json(tmp_path / "manifest.json", {"schema_version": 99})
    with pytest.raises(ManifestError, match="schema_version 99"):
        read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        write_manifest(tmp_path, "x", outputs={"a": "missing.txt"})
    assert json.loads((tmp_path / "manifest.json").read_text())["schema_version"] == 99


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o644


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_outputs_refuse_non_finite_numbers(tmp_path, bad):
    path = tmp_path / "m.json"
    with pytest.raises(ValueError, match=r"m\.json: params\.weights\[1\] \(") as e:
        atomic_write_json(path, {"params": {"weights": [1.0, bad]}, "ok": 2})
    assert "finite" in str(e.value)
    assert not path.exists()
    atomic_write_json(path, {"params": {"weights": [1.0, 2.0]}})
    assert json.loads(path.read_text())["params"]["weights"] == [1.0, 2.0]


def test_a_large_unchanged_file_is_hashed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    """One `doppel swap` read its plate 15 times (gates, lineage, credentials); a large file unchanged since it
    was hashed is hashed once per process, a rewritten one (even with its old mtime put back) again."""
    import hashlib
    import os
    import time

    import core.storage as st

    big = tmp_path / "plate.mov"
    data = os.urandom(st.MEMO_MIN_BYTES)
    big.write_bytes(data)
    reads = []
    real_open = open

    def counting_open(path, *a, **k):
        reads.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", counting_open)
    assert st.sha256_file(big) == hashlib.sha256(data).hexdigest()
    assert st.sha256_file(big) == hashlib.sha256(data).hexdigest() and reads.count(str(big)) == 1
    before = os.stat(big)
    time.sleep(0.05)
    other = bytes(reversed(data))
    with real_open(big, "r+b") as f:                     # in place: same inode, same size
        f.write(other)
    os.utime(big, ns=(before.st_atime_ns, before.st_mtime_ns))     # its old mtime put back
    assert st.sha256_file(big) == hashlib.sha256(other).hexdigest() and reads.count(str(big)) == 2
    small = tmp_path / "small.json"
    small.write_bytes(b"{}")
    st.sha256_file(small)
    st.sha256_file(small)
    assert reads.count(str(small)) == 2                   # small files are always read


def test_link_if_identical(tmp_path):
    from core.storage import link_if_identical

    a, b, c = (tmp_path / n for n in ("a.ply", "b.ply", "c.ply"))
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert link_if_identical(a, b) and b.samefile(a) and b.read_bytes() == b"same bytes"
    assert link_if_identical(a, b)                        # already one file
    assert not link_if_identical(a, c) and not c.samefile(a) and c.read_bytes() == b"other bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply", "b.ply", "c.ply"]   # no temporary left
