"""Manifests: every unreadable form is a ManifestError naming the file; workspace signatures catch edits;
content identity survives a removed manifest; old workspaces are upgraded in place."""

import json
import os
import sqlite3

import pytest

from assets.content_index import matches
from assets.hashing import digest, path_sha256
from assets.manifest_signing import KEY_NAME, SignatureStatus, check_signature, load_key, sign_folder, signed
from assets.workspace import SCHEMA_VERSION, Workspace
from core.errors import ManifestError
from core.storage import read_manifest, write_manifest

BAD_MANIFESTS = {
    "binary garbage": (bytes(range(256)), "not UTF-8"),
    "truncated": (b'{"schema_version": 1, "stage": "ri', "not valid JSON"),
    "json list": (b"[]", "a JSON list, expected an object"),
    "json string": (b'"manifest"', "a JSON string, expected an object"),
    "json number": (b"1", "a JSON number, expected an object"),
    "deeply nested": (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    "schema": (b'{"schema_version": 2}', "schema_version 2"),
    "params a list": (b'{"schema_version": 1, "params": []}', "'params' must be an object"),
    "output entry a string": (b'{"schema_version": 1, "outputs": {"rig": "rig.npz"}}', "outputs.rig must be"),
    "stage a number": (b'{"schema_version": 1, "stage": 3}', "'stage' must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_every_unreadable_manifest_is_a_manifest_error(tmp_path, case):
    data, expected = BAD_MANIFESTS[case]
    (tmp_path / "manifest.json").write_bytes(data)
    with pytest.raises(ManifestError, match=expected) as e:
        read_manifest(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "manifest.json") in msg and "\n" not in msg and "re-run the stage" in msg


def test_manifest_that_is_a_folder_or_device_is_a_manifest_error(tmp_path):
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").symlink_to("/dev/zero")
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(other)


def stage(tmp_path, name="stage"):
    d = tmp_path / name
    d.mkdir()
    (d / "data.npz").write_bytes(b"numbers")
    write_manifest(d, "rig", params={"actor_id": "jane"}, outputs={"rig": "data.npz"})
    return d


def test_signature_catches_edits_and_names_other_workspaces(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    key = ws.manifest_key()
    assert (ws.root / KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert load_key(ws.root) == key and key.secret.hex() not in repr(key)
    d = stage(tmp_path)
    assert check_signature(read_manifest(d), key) is SignatureStatus.UNSIGNED
    m = sign_folder(d, key)
    assert key.secret.hex() not in (d / "manifest.json").read_text()
    assert check_signature(read_manifest(d), key) is SignatureStatus.VALID
    edited = {**m, "params": {"actor_id": "virtual"}}
    assert check_signature(edited, key) is SignatureStatus.EDITED
    assert check_signature({**m, "signature": "forged"}, key) is SignatureStatus.EDITED
    other = Workspace.init(tmp_path / "ws2").manifest_key()
    assert other.key_id != key.key_id
    assert check_signature(signed(edited, other), key) is SignatureStatus.OTHER_KEY


def test_key_readable_by_others_is_refused(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    os.chmod(ws.root / KEY_NAME, 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        ws.manifest_key()


def test_data_hash_survives_a_removed_or_edited_manifest(tmp_path):
    d = stage(tmp_path)
    before = digest(d)
    assert before.sha256 == path_sha256(d)
    (d / "manifest.json").write_text("{}")
    assert digest(d).data_sha256 == before.data_sha256 and digest(d).sha256 != before.sha256
    (d / "manifest.json").unlink()
    assert digest(d).data_sha256 == before.data_sha256
    (d / "data.npz").write_bytes(b"other numbers")
    assert digest(d).data_sha256 != before.data_sha256


def test_workspace_of_schema_2_is_upgraded_in_place(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    con = sqlite3.connect(ws.index_path)
    con.execute("DROP TABLE content")
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.commit()
    con.close()
    ws = Workspace.open(ws.root)
    with ws.read() as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert matches(con, ["00" * 32]) == []


def test_empty_content_identifies_nobody(tmp_path):
    from assets.content_index import EMPTY_SHA256, ContentRow, insert

    ws = Workspace.init(tmp_path / "ws")
    with ws.write() as con:
        from assets import audit

        seq = audit.append(con, {"action": "test"}).seq
        insert(con, [ContentRow(EMPTY_SHA256, "empty.txt", None), ContentRow("ab" * 32, "x", None)], "virtual", seq)
    with ws.read() as con:
        assert matches(con, [EMPTY_SHA256]) == []
        assert [m.actor_id for m in matches(con, ["ab" * 32])] == ["virtual"]


def test_manifest_json_written_by_write_manifest_reads_back(tmp_path):
    d = stage(tmp_path)
    assert read_manifest(d)["outputs"]["rig"]["path"] == "data.npz"
    assert json.loads((d / "manifest.json").read_text())["params"]["actor_id"] == "jane"
