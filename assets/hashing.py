"""Content hashes of assets: a file's SHA-256, or one SHA-256 for a whole folder.

A stage folder (one with ``manifest.json``) is identified by its manifest's hash: the manifest already
lists every output with its own SHA-256, so hashing it is cheap and changes whenever any output does.
Any other folder gets a tree hash: SHA-256 over the sorted (relative path, file SHA-256) pairs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
    return tree_sha256({f.relative_to(path).as_posix(): sha256_file(f) for f in path.rglob("*") if f.is_file()})


def tree_sha256(files: dict[str, str]) -> str:
    """The tree hash of a folder from its files: relative POSIX path -> SHA-256 (as `path_sha256` computes it)."""
    h = hashlib.sha256(b"doppel-tree-v1\n")
    for rel in sorted(files, key=PurePosixPath):  # path order (parts), as before this helper existed
        h.update(f"{rel}\0{files[rel]}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ContentDigest:
    """Everything the consent gate needs to recognise a file or folder by content, hashing each file once.

    sha256: `path_sha256` (a folder with a manifest: the manifest's hash); data_sha256: the file's hash, or the
    tree hash of the folder's files except manifest.json (unchanged when only the manifest is edited or removed);
    files: relative POSIX path -> SHA-256 of every file (for a file: {name: hash}).
    """

    path: Path
    is_dir: bool
    sha256: str
    data_sha256: str
    files: dict[str, str]


def digest(path: str | os.PathLike) -> ContentDigest:
    """The `ContentDigest` of a file or folder (FileNotFoundError naming it when it is neither)."""
    path = Path(path)
    if path.is_file():
        sha = sha256_file(path)
        return ContentDigest(path, False, sha, sha, {path.name: sha})
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = {f.relative_to(path).as_posix(): sha256_file(f) for f in sorted(path.rglob("*")) if f.is_file()}
    data = {k: v for k, v in files.items() if k != MANIFEST_NAME}
    sha = files[MANIFEST_NAME] if MANIFEST_NAME in files else tree_sha256(files)
    return ContentDigest(path, True, sha, tree_sha256(data), files)
