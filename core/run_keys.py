"""What a resumable run depends on, as JSON: a checkpoint is resumed only by a run of the same key.

A key names its inputs by identity, not by content (hashing a 4K plate or a shot's model again would cost what
the resume saves): a file by its name, size and modification time, a stage folder by its manifest (which hashes
the folder's outputs). `key_difference` says which part of two keys differs, for the one-line refusal of a resume
with other inputs or options.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def files_digest(paths: list[Path]) -> str:
    """A digest of files' names, sizes and modification times (a plate of 14 400 frames: well under a second)."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def folder_digest(folder: str | os.PathLike) -> str:
    """A stage folder's identity: its manifest's bytes (which hash its outputs), else its files' stats."""
    from core.storage import sha256_file

    folder = Path(folder)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return sha256_file(manifest)
    return files_digest(sorted(p for p in folder.rglob("*") if p.is_file()))


def input_identity(path: str | os.PathLike | None) -> dict | None:
    """{"path": resolved path, "digest": ...} of a file (`files_digest`) or a stage folder (`folder_digest`);
    None for None."""
    if path is None:
        return None
    p = Path(path)
    return {"path": str(p.resolve()), "digest": folder_digest(p) if p.is_dir() else files_digest([p])}


def key_difference(a: dict, b: dict, words: dict[str, str] | None = None) -> str:
    """The first part of two keys that differs, in words: ``words[part]`` when given, "option X, Y" for the
    differing entries of an "options" part, else the part's name ("" when the keys are equal)."""
    for k in sorted(a.keys() | b.keys()):
        if a.get(k) != b.get(k):
            if k == "options" and isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                return "option " + ", ".join(sorted(o for o in a[k].keys() | b[k].keys()
                                                    if a[k].get(o) != b[k].get(o)))
            return (words or {}).get(k, k)
    return ""
