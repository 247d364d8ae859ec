"""Read SMPL-family model files without running code from them.

The official SMPL / SMPL-X / FLAME ``.pkl`` files are Python-2 pickles holding numpy arrays, chumpy
arrays (``chumpy.ch.Ch``) and scipy sparse matrices. A pickle can name any importable callable and have
it called while loading, so ``pickle.load`` on a file from the internet is arbitrary code execution.
`RestrictedUnpickler` resolves only an allow-list of globals: numpy's array/dtype reconstructors,
stand-ins for chumpy and scipy.sparse classes (plain containers of their state, turned into numpy
afterwards), and ``object`` / ``copyreg._reconstructor`` restricted to those stand-ins. Every other
global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused before anything is called.
"""

from __future__ import annotations

import io
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from reconstruction.body_models.base import ModelFileError

log = logging.getLogger(__name__)


class _Stub:
    """Stand-in for a chumpy / scipy.sparse object: it only stores the state the pickle gives it."""

    kind = "stub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyStub(_Stub):
    kind = "chumpy"
    cls_name = "chumpy"


class _SparseStub(_Stub):
    kind = "sparse"
    cls_name = "csc_matrix"


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor, limited to our stand-ins (and numpy arrays) built on ``object``/ndarray."""
    if not (isinstance(cls, type) and issubclass(cls, (_Stub, np.ndarray))) or base not in (object, np.ndarray):
        raise pickle.UnpicklingError(f"refused copyreg._reconstructor({cls!r}, {base!r})")
    if base is object:
        return object.__new__(cls)
    return np.ndarray.__new__(cls, state) if state is not None else np.ndarray.__new__(cls, 0)


_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the allow-listed globals described in the module docstring."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _NUMPY_ALLOWED:
            import importlib

            return getattr(importlib.import_module(module.replace("numpy._core", "numpy.core")
                                                   if not hasattr(np, "_core") else module), name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _safe_reconstructor
        if module in ("__builtin__", "builtins") and name == "object":
            return object
        if module == "_codecs" and name == "encode":   # how Python 3 pickles bytes at protocols < 3
            import codecs

            return codecs.encode
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStub,), {"cls_name": f"{module}.{name}"})
        if module.startswith("scipy.sparse") and name.endswith("_matrix"):
            return type(name, (_SparseStub,), {"cls_name": name})
        raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays, chumpy arrays and "
                                     "scipy sparse matrices may appear in a body-model file)")


def _convert(value: Any, key: str, path: Path) -> Any:
    """Turn stand-ins into numpy arrays (recursively through dicts / lists)."""
    if isinstance(value, _ChumpyStub):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise ModelFileError(f"{path}: {key!r} is a chumpy {value.cls_name} expression, not a plain array; "
                                 "convert the file to .npz with numpy arrays first")
        return np.asarray(_convert(state["x"], key, path))
    if isinstance(value, _SparseStub):
        import scipy.sparse as sp

        s = value.state if isinstance(value.state, dict) else {}
        shape = s.get("_shape", s.get("shape"))
        try:
            fmt = value.cls_name.split("_")[0]
            if fmt in ("csc", "csr"):
                cls = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
                mat = cls((np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])), shape=shape)
            elif fmt == "coo":
                mat = sp.coo_matrix((np.asarray(s["data"]), (np.asarray(s["row"]), np.asarray(s["col"]))), shape=shape)
            else:
                raise KeyError(fmt)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: {key!r}: unsupported sparse matrix {value.cls_name} ({e})") from e
        return mat.toarray()
    if isinstance(value, dict):
        return {k: _convert(v, f"{key}.{k}" if key else str(k), path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v, key, path) for v in value)
    return value


def safe_load_pickle(path: str | Path) -> dict[str, Any]:
    """Load a (Python 2 or 3) pickle of a dict of arrays without running code from it.

    Chumpy arrays and scipy sparse matrices come back as numpy arrays. Raises ModelFileError naming the
    file when it is not a dict, is corrupt, or names a global outside the allow-list."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e})") from e
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise ModelFileError(f"{path}: refused to load: {e}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, RecursionError,
            MemoryError) as e:
        # random or truncated bytes: opcodes with absurd lengths end in MemoryError / OverflowError
        raise ModelFileError(f"{path}: not a readable model pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    return {str(k): _convert(v, str(k), path) for k, v in obj.items()}


def load_model_arrays(path: str | Path) -> dict[str, Any]:
    """Arrays of an ``.npz`` (numeric arrays only: object arrays are skipped, never unpickled) or ``.pkl``
    (through the restricted unpickler) model file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file does not exist")
    if path.suffix == ".pkl":
        return safe_load_pickle(path)
    if path.suffix == ".npz":
        out = {}
        if path.stat().st_size == 0:
            raise ModelFileError(f"{path}: model file is empty (0 bytes)")
        try:
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    try:
                        out[k] = z[k]
                    except ValueError:
                        log.debug("%s: skipping object array %r (not needed, never unpickled)", path, k)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as e:
            raise ModelFileError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from e
        return out
    raise ModelFileError(f"{path}: unsupported model file type {path.suffix!r} (expected .npz or .pkl)")
