"""Atomic writes, content hashes and stage manifests (ARCHITECTURE.md, "Data on disk").

Every stage writes into a folder with a ``manifest.json`` beside its outputs. Writes are atomic:
the data goes to a temporary file in the same folder, is flushed to disk, then renamed over the
final name, so an interrupted write leaves the previous file intact and never a half-written one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from core.errors import ManifestError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
_HASH_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    If the block raises, the temporary file is removed and ``path`` keeps its old content.
    ``mode`` is "wb" or "w" (text, UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = new_temp_file(path.parent, f".{temp_name_part(path.name, 16)}.", ".tmp")   # the mode open() gives
    try:
        kwargs = {} if mode == "wb" else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(e, OSError) and e.filename is None:   # "[Errno 28] No space left" names no file
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


NAME_MAX_BYTES = 255          # the longest file name ext4, XFS, APFS and NTFS take (bytes; NTFS: characters)


def temp_name_part(name: str, room: int) -> str:
    """``name`` as the part of a temporary file's name that says whose it is, leaving ``room`` bytes for the rest
    of that name (dots, owner, time, random letters, suffix): ``name`` itself when it fits, else its head and a
    hash of it (``HEAD~0123456789ab``; the same for the same name). A valid output name of 250 bytes failed,
    because its temporary sibling was longer than the file system takes."""
    import hashlib

    budget = NAME_MAX_BYTES - room
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= budget:
        return name
    head = raw[: max(budget - 13, 1)].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:12]}"


FULL_DISK_BYTES = 16 << 20    # a write that failed with this little free space left is taken for a full disk


def as_disk_full(e: BaseException, written: str | os.PathLike, shown: str | os.PathLike) -> BaseException:
    """``e`` raised writing ``written`` (maybe a temporary name) -> OSError(ENOSPC, ..., ``shown``) when the disk
    is full: errno ENOSPC, a writer that reports no errno (OpenCV's imwrite, OpenEXR, an encoder's pipe) on a
    filesystem with under FULL_DISK_BYTES free, or another error whose message quotes ENOSPC (an error a worker
    process sent back as text); OSError(EDQUOT, ..., ``shown``) likewise when a disk quota is exceeded (a studio
    file server's per-user or per-group quota); else ``e`` unchanged. The CLI prints either as one line naming
    ``shown`` (doppel.cli)."""
    if not isinstance(e, OSError):         # a library's own error carrying the OS's words (Blender's worker)
        said = str(e)
        for code in (errno.ENOSPC, errno.EDQUOT):
            if f"[Errno {code}]" in said or os.strerror(code) in said:
                return OSError(code, os.strerror(code), str(shown))
        return e
    if e.errno == errno.EDQUOT:            # the user's (or group's) quota on a studio file server: full for them
        return OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(shown))
    full = e.errno == errno.ENOSPC
    if not full and e.errno in (None, errno.EPIPE):
        try:
            full = shutil.disk_usage(Path(written).parent).free < FULL_DISK_BYTES
        except OSError:
            full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(shown)) if full else e


def raise_if_disk_full(e: BaseException, written: str | os.PathLike, shown: str | os.PathLike) -> None:
    """Raise `as_disk_full`'s OSError (from ``e``) when ``e`` is a full disk; return otherwise, for the caller to
    re-raise ``e`` as it was."""
    full = as_disk_full(e, written, shown)
    if full is not e:
        raise full from e


_TEMP_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def new_temp_file(folder: str | os.PathLike, prefix: str, suffix: str = "") -> tuple[int, Path]:
    """A new empty file ``folder/PREFIX<8 random letters>SUFFIX``, opened for writing -> (descriptor, path): made as
    safely as mkstemp (O_EXCL, never following a link) but with the mode a plain open() gives, 0666 through the
    umask or through the folder's default ACL. mkstemp's 0600 followed by a chmod to the umask's mode set the ACL
    mask too: on a folder shared by a default ACL (a NAS's way) every output lost the group's write access."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = Path(folder) / f"{prefix}{_random_letters()}{suffix}"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(Path(folder) / prefix))


def new_temp_folder(folder: str | os.PathLike, prefix: str) -> Path:
    """A new empty folder ``folder/PREFIX<8 random letters>`` with the mode a plain mkdir() gives (0777 through the
    umask or the folder's default ACL, and its set-group-ID bit), where mkdtemp makes 0700 (see new_temp_file)."""
    for _ in range(100):
        path = Path(folder) / f"{prefix}{_random_letters()}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(Path(folder) / prefix))


def _random_letters(n: int = 8) -> str:
    import secrets

    return "".join(secrets.choice(_TEMP_LETTERS) for _ in range(n))


def default_mode(directory: bool = False) -> int:
    """The mode a plain open() (0o666) or mkdir() (0o777) would give under the process umask (with no default ACL
    on the folder): what `new_temp_file` / `new_temp_folder` give there."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_npz(path: str | os.PathLike, compressed: bool = True, **arrays: Any) -> Path:
    """``np.savez(_compressed)`` of ``arrays`` to ``path``, atomically: built in memory first, so a write that fails
    (a full disk) leaves no half-written zip behind and no ZipFile to complain when it is collected."""
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically; returns the path.

    Only valid JSON is written: a NaN or infinity anywhere in ``obj`` raises ValueError naming the file and the
    key path of the first one (``Infinity``/``NaN`` are not JSON, and no reader should meet them)."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    except ValueError as e:
        where = _first_non_finite(json.loads(json.dumps(obj, default=_json_default)))
        raise ValueError(f"{path}: {where or 'a value'} is not a finite number; JSON outputs hold finite "
                         f"numbers only") from e
    return atomic_write_text(path, text + "\n")


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """The key path (``a.b[2]``) of the first NaN or infinity in a JSON-like ``obj``; None when there is none."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{where or 'the value'} ({obj})"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _first_non_finite(v, f"{where}.{k}" if isinstance(k, str) else f"{where}[{k}]")
        if found:
            return found.lstrip(".")
    return None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def link_if_identical(original: str | os.PathLike, copy: str | os.PathLike) -> bool:
    """Make ``copy`` a hard link to ``original`` when the two files hold the same bytes (one copy on disk; the
    path still reads as before), atomically. False, ``copy`` left as it is, when they differ or the file system
    takes no hard link (another device, a share without links)."""
    import filecmp

    original, copy = Path(original), Path(copy)
    if os.path.samefile(original, copy):
        return True
    if not filecmp.cmp(original, copy, shallow=False):
        return False
    tmp = copy.with_name(f".{temp_name_part(copy.name, 40)}.{_random_letters()}.link")
    try:
        os.link(original, tmp)
    except OSError:
        return False
    os.replace(tmp, copy)
    return True


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks. A file of at least ``MEMO_MIN_BYTES`` is hashed once
    per process while it is unchanged (same device, inode, size, modification and change times): a swap's plate
    was read 15 times by one `doppel swap` (two consent gates, the lineage, the credentials' ingredient...), minutes
    of hashing for a long 4K plate. Small files are always read (a rewrite within one clock tick keeps its times)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    memo = st.st_size >= MEMO_MIN_BYTES and st.st_ino != 0          # a filesystem without inode numbers: no memo
    if memo and _HASH_MEMO.get(key, (None, None))[0] == stamp:
        return _HASH_MEMO[key][1]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
        after = os.fstat(f.fileno())
    digest = h.hexdigest()
    if memo and (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == stamp:
        if len(_HASH_MEMO) >= _HASH_MEMO_ENTRIES:
            _HASH_MEMO.pop(next(iter(_HASH_MEMO)))
        _HASH_MEMO[key] = (stamp, digest)
    return digest


MEMO_MIN_BYTES = 16 << 20      # files this large are hashed once per process while unchanged (sha256_file)
_HASH_MEMO_ENTRIES = 1024
_HASH_MEMO: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}


def content_key(*parts: Any) -> str:
    """A stable hex key for a cache entry: SHA-256 of the JSON of ``parts`` (params, input hashes,
    schema versions). Dict keys are sorted, so argument order inside a dict does not matter."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return sha256_bytes(blob.encode("utf-8"))


def software_versions() -> dict[str, str]:
    """Versions of Doppel and the libraries whose behaviour shapes its outputs."""
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in ("doppel", "numpy", "torch", "anny"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_manifest(
    stage_dir: str | os.PathLike,
    stage: str,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    params: Mapping[str, Any] | None = None,
    outputs: Mapping[str, str | os.PathLike] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``stage_dir/manifest.json`` atomically and return it.

    inputs: name -> path of an input file (hashed here); outputs: name -> path relative to
    ``stage_dir`` or absolute inside it (hashed here). ``params`` must be JSON-serialisable.
    """
    stage_dir = Path(stage_dir)
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "stage": stage,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "software": software_versions(),
        "params": dict(params or {}),
        "inputs": {k: _file_entry(Path(p)) for k, p in (inputs or {}).items()},
        "outputs": {k: _file_entry(stage_dir / p, relative_to=stage_dir) for k, p in (outputs or {}).items()},
    }
    manifest["key"] = content_key(stage, manifest["params"], {k: v["sha256"] for k, v in manifest["inputs"].items()})
    if extra:
        manifest.update(extra)
    atomic_write_json(stage_dir / MANIFEST_NAME, manifest)
    return manifest


def refresh_manifest_outputs(stage_dir: str | os.PathLike, names: Iterable[str]) -> dict:
    """Hash again the outputs ``names`` of ``stage_dir``'s manifest after the stage rewrote them (a take's
    metrics.json, which lists its frames once they are fitted), and write the manifest back atomically; returns
    it. KeyError for a name the manifest does not list."""
    stage_dir = Path(stage_dir)
    manifest = read_manifest(stage_dir)
    for name in names:
        entry = manifest["outputs"][name]
        manifest["outputs"][name] = _file_entry(stage_dir / entry["path"], relative_to=stage_dir)
    atomic_write_json(stage_dir / MANIFEST_NAME, manifest)
    return manifest


def _file_entry(path: Path, relative_to: Path | None = None) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file listed in the manifest does not exist")
    name = str(path.resolve().relative_to(relative_to.resolve())) if relative_to else str(path)
    return {"path": name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists files and parameters; anything larger is not one of ours
_FIX = "restore it from a backup or re-run the stage that wrote the folder"


def read_manifest(stage_dir: str | os.PathLike) -> dict:
    """Read and check ``stage_dir/manifest.json``; raises ManifestError (one line naming the file, what is wrong
    and the fix) for every way it can be unreadable: missing, not a regular file, too large, not UTF-8, not
    JSON, nested too deeply, not a JSON object, another schema version, or fields of the wrong type
    (``stage`` a string; ``params`` an object; ``inputs`` / ``outputs`` objects of {path, sha256} entries)."""
    path = Path(stage_dir) / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest (is {stage_dir} a Doppel stage folder?)")
    if not path.is_file():
        raise ManifestError(f"{path}: not a regular file; {_FIX}")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: {size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES}); {_FIX}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text (byte {e.start}); {_FIX}") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e}); {_FIX}") from None
    except RecursionError:
        raise ManifestError(f"{path}: JSON nested too deeply to be a manifest; {_FIX}") from None
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: Any, path: str | os.PathLike) -> None:
    """ManifestError naming ``path`` unless ``manifest`` has the structure `write_manifest` writes."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: a JSON {_json_kind(manifest)}, expected an object; {_FIX}")
    version = manifest.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema_version {version!r}, expected {MANIFEST_SCHEMA_VERSION}; {_FIX}")
    if "stage" in manifest and not isinstance(manifest["stage"], str):
        raise ManifestError(f"{path}: field 'stage' must be a string, got a JSON {_json_kind(manifest['stage'])}; "
                            f"{_FIX}")
    if "params" in manifest and not isinstance(manifest["params"], dict):
        raise ManifestError(f"{path}: field 'params' must be an object, got a JSON {_json_kind(manifest['params'])}; "
                            f"{_FIX}")
    for field in ("inputs", "outputs"):
        entries = manifest.get(field, {})
        if not isinstance(entries, dict):
            raise ManifestError(f"{path}: field {field!r} must be an object, got a JSON {_json_kind(entries)}; {_FIX}")
        for name, entry in entries.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                    and isinstance(entry.get("sha256"), str)):
                raise ManifestError(f"{path}: {field}.{name} must be an object with string 'path' and 'sha256'; "
                                    f"{_FIX}")


def _json_kind(value: Any) -> str:
    kinds = ((dict, "object"), (list, "list"), (str, "string"), (bool, "boolean"), (int, "number"),
             (float, "number"))
    return next((name for t, name in kinds if isinstance(value, t)), "null")


def stage_is_current(stage_dir: str | os.PathLike, stage: str, inputs: Mapping[str, str | os.PathLike],
                     params: Mapping[str, Any]) -> bool:
    """True when ``stage_dir`` holds a manifest for the same stage, parameters and input contents,
    and every output it lists is still there with its recorded hash: the stage can be skipped."""
    try:
        manifest = read_manifest(stage_dir)
    except ManifestError:
        return False
    key = content_key(stage, dict(params), {k: sha256_file(p) for k, p in inputs.items()})
    if manifest.get("key") != key:
        return False
    for entry in manifest.get("outputs", {}).values():
        out = Path(stage_dir) / entry["path"]
        if not out.is_file() or sha256_file(out) != entry["sha256"]:
            return False
    return True
