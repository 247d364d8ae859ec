"""Content hashes of assets: a file's SHA-256, or one SHA-256 for a whole folder.

A stage folder (one with ``manifest.json``) is identified by its manifest's hash: the manifest already
lists every output with its own SHA-256, so hashing it is cheap and changes whenever any output does.
Any other folder gets a tree hash: SHA-256 over the sorted (relative path, file SHA-256) pairs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.storage import MANIFEST_NAME, sha256_file


def path_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, or of a folder (its manifest.json when it has one, else a tree hash).

    Raises FileNotFoundError naming the path when it does not exist.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    manifest = path / MANIFEST_NAME
    if manifest.is_file():
        return sha256_file(manifest)
    h = hashlib.sha256(b"doppel-tree-v1\n")
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(f"{rel}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()
