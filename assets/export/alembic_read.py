"""Reading the string user properties of an Alembic (.abc) file without the Alembic library (which has no wheel
for this Python): enough of the Ogawa container and of Alembic's property headers to find a Doppel export's
provenance (the ``doppel_*`` properties `assets.export.alembic` writes) for `doppel verify`.

Ogawa (the container of every Alembic file since 1.5): a 16-byte header ("Ogawa", a frozen flag, a version, the
root group's offset), then groups and data blocks addressed by 64-bit offsets. A group is a child count and one
offset per child (the top bit set: a data block, an offset of 0: empty); a data block is its size and its bytes.
Alembic's layout on top: the archive's root group holds the top object at child 2; an object group holds its
properties (a compound) at child 0, its child objects at 1.., and their headers in its last child; a compound holds
its properties in order and their headers in its last child; a scalar property's samples are data blocks of a
16-byte digest and the value (a string: its characters, NUL-terminated; Blender writes a user property as a
"scalar-like" array of one string, whose sample is laid out the same). The property headers' bit fields are
those of Alembic's ``AbcCoreOgawa/ReadUtil.cpp`` (ReadPropertyHeaders).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

OGAWA_MAGIC = b"Ogawa"
_DATA_BIT = 1 << 63
_STRING_POD = 12                  # Alembic's kStringPOD
MAX_DEPTH = 64                    # objects and compounds nest far less in any real file


class AlembicReadError(ValueError):
    """Not an Ogawa Alembic file, or a damaged one."""


@dataclass(frozen=True)
class _Header:
    kind: int            # 0 compound, 1 scalar, 2 array, 3 an array of one value per sample ("scalar-like")
    pod: int
    name: str


class _Ogawa:
    def __init__(self, data) -> None:            # bytes, or an mmap of the file
        if len(data) < 16 or data[:len(OGAWA_MAGIC)] != OGAWA_MAGIC:
            raise AlembicReadError("not an Alembic file (no Ogawa header; HDF5 Alembic files are not read)")
        self.data = data
        self.root = self._u64(8)

    def _u64(self, pos: int) -> int:
        if pos < 0 or pos + 8 > len(self.data):
            raise AlembicReadError(f"offset {pos} past the end of the file ({len(self.data)} bytes)")
        return struct.unpack_from("<Q", self.data, pos)[0]

    def children(self, group: int) -> list[int]:
        """The child offsets of the group at ``group`` (0: an empty group)."""
        if group == 0:
            return []
        n = self._u64(group)
        if n > (len(self.data) - group) // 8:
            raise AlembicReadError(f"a group at {group} claims {n} children")
        return list(struct.unpack_from(f"<{n}Q", self.data, group + 8))

    def block(self, child: int) -> bytes:
        """The bytes of a data child (its offset with the data bit)."""
        if not child & _DATA_BIT:
            raise AlembicReadError("a group where a data block was expected")
        pos = child & ~_DATA_BIT
        if pos == 0:
            return b""
        size = self._u64(pos)
        if pos + 8 + size > len(self.data):
            raise AlembicReadError(f"a data block at {pos} runs past the end of the file")
        return self.data[pos + 8:pos + 8 + size]


def _uint(buf: bytes, pos: int, hint: int) -> tuple[int, int]:
    size = (1, 2, 4)[hint] if hint < 3 else 0
    if size == 0 or pos + size > len(buf):
        raise AlembicReadError("a property header is cut short")
    return int.from_bytes(buf[pos:pos + size], "little"), pos + size


def property_headers(buf: bytes) -> list[_Header]:
    """The headers of a compound's properties, in order, from its last child's bytes."""
    out, pos = [], 0
    while pos < len(buf):
        if pos + 4 > len(buf):
            raise AlembicReadError("a property header is cut short")
        info = struct.unpack_from("<I", buf, pos)[0]
        pos += 4
        kind, hint, pod = info & 0x3, (info & 0xC) >> 2, (info & 0xF0) >> 4
        if kind != 0:
            _, pos = _uint(buf, pos, hint)                       # next sample index
            if info & 0x200:
                pos = _uint(buf, _uint(buf, pos, hint)[1], hint)[1]   # first and last changed indices
            if info & 0x100:
                _, pos = _uint(buf, pos, hint)                   # time sampling index
        n, pos = _uint(buf, pos, hint)
        if n == 0 or pos + n > len(buf):
            raise AlembicReadError("a property header is cut short")
        name = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        if (info & 0xFF00000) >> 20 == 0xFF:                     # metadata written inline
            m, pos = _uint(buf, pos, hint)
            pos += m
        out.append(_Header(kind, pod, name))
    return out


def _strings_in_compound(f: _Ogawa, group: int, prefix: str, found: dict[str, str], depth: int) -> None:
    kids = f.children(group)
    if depth > MAX_DEPTH or not kids or not kids[-1] & _DATA_BIT:
        return
    for h, child in zip(property_headers(f.block(kids[-1])), kids[:-1], strict=False):
        if h.kind == 0 and not child & _DATA_BIT:
            _strings_in_compound(f, child, prefix, found, depth + 1)
        elif h.kind in (1, 3) and h.pod == _STRING_POD and h.name.startswith(prefix) and not child & _DATA_BIT:
            samples = f.children(child)
            if samples:
                value = f.block(samples[0])[16:]                  # after the sample's 16-byte digest
                found.setdefault(h.name, value.split(b"\0", 1)[0].decode("utf-8", "replace"))


def _strings_in_object(f: _Ogawa, group: int, prefix: str, found: dict[str, str], depth: int) -> None:
    kids = f.children(group)
    if depth > MAX_DEPTH or not kids:
        return
    if not kids[0] & _DATA_BIT:
        _strings_in_compound(f, kids[0], prefix, found, depth + 1)
    for child in kids[1:-1]:
        if not child & _DATA_BIT:
            _strings_in_object(f, child, prefix, found, depth + 1)


def string_properties(path: str | Path, prefix: str = "doppel_") -> dict[str, str]:
    """Every scalar string property named ``prefix``... anywhere in the Alembic file ``path`` (user properties of
    any object; the first sample of each; the first of a name wins): {name: value}. AlembicReadError (one line)
    when the file is not an Ogawa Alembic archive or is damaged."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 16:
            raise AlembicReadError("not an Alembic file (no Ogawa header; HDF5 Alembic files are not read)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:     # a cache can be gigabytes
            f = _Ogawa(data)
            top = f.children(f.root)
            if len(top) < 3 or top[2] & _DATA_BIT:
                raise AlembicReadError("no top object in the archive")
            found: dict[str, str] = {}
            try:
                _strings_in_object(f, top[2], prefix, found, 0)
            except (struct.error, IndexError) as e:
                raise AlembicReadError(f"damaged ({e})") from None
    return found
