"""Reading user files with errors that name the file: JSON objects and ``.npz`` archives; names as text
(`shown_name`).

Every failure (missing, empty, truncated, binary, not an object, not a zip) is a ValueError or
FileNotFoundError whose message starts with the path. An EOFError never escapes: click turns an
escaped EOFError into "Aborted" (exit 130) as if the user had pressed Ctrl-D.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def read_json_object(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    """The JSON object in ``path`` (UTF-8). what: how to call the file in messages ("calibration file")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: {what} is not UTF-8 text (binary or another encoding: {e.reason} at byte "
                         f"{e.start})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); expected a {what}") from e
    except RecursionError as e:
        raise ValueError(f"{path}: {what} is nested too deeply to read") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got a JSON {type(doc).__name__}")
    return doc


def read_npz(path: str | os.PathLike, what: str = "archive") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles: object arrays are an error naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} is empty (0 bytes)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path}: {what} is not a readable .npz ({type(e).__name__}: {e})") from e


def shown_name(path: str | os.PathLike) -> str:
    """A path as UTF-8 text can hold it: itself, or when its name is in another encoding (Latin-1 bytes from an old
    share, which Python holds as surrogates) with those bytes written as escapes (``caf\\xe9.bvh``)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
