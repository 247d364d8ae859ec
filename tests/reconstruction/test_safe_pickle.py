"""The restricted unpickler: real-format content loads, anything that could run code is refused unrun."""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from reconstruction.body_models import ModelFileError, load_model_arrays, safe_load_pickle


class _RunsShell:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        import os

        return (os.system, (self.cmd,))


class _RunsEval:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('PWNED').touch()",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "SMPLX_NEUTRAL.pkl"
    payload = {"v_template": np.zeros((3, 3)), "f": _RunsShell(f"touch {marker}")}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    # sanity: the ordinary unpickler would run it
    with pytest.raises(ModelFileError, match="refused.*(posix|os|nt)\\.system"):
        safe_load_pickle(path)
    assert not marker.exists(), "the payload ran"
    assert path.is_file(), "the file is left alone"


def test_eval_payload_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"a": _RunsEval()}, protocol=2))
    with pytest.raises(ModelFileError, match="refused.*eval"):
        load_model_arrays(path)
    assert not (tmp_path / "PWNED").exists()


def test_the_payload_is_real(tmp_path):
    """The malicious file really does execute under plain pickle (so the test above can fail)."""
    marker = tmp_path / "ran"
    data = pickle.dumps({"f": _RunsShell(f"touch {marker}")}, protocol=2)
    pickle.loads(data)
    assert marker.exists()


def test_numpy_chumpy_and_sparse_become_numpy(tmp_path, monkeypatch):
    # A stand-in 'chumpy.ch.Ch' class that pickles like chumpy's (object state with the array in 'x').
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty = True

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    rng = np.random.default_rng(0)
    shapedirs = rng.normal(size=(4, 3, 2))
    dense_reg = np.array([[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    payload = {"shapedirs": Ch(shapedirs), "J_regressor": sp.csc_matrix(dense_reg),
               "weights": rng.random((4, 2)).astype(np.float32), "kintree_table": np.array([[4294967295, 0], [0, 1]]),
               "bs_style": "lbs"}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    out = safe_load_pickle(path)
    assert isinstance(out["shapedirs"], np.ndarray) and np.array_equal(out["shapedirs"], shapedirs)
    assert np.array_equal(out["J_regressor"], dense_reg)
    assert out["weights"].dtype == np.float32 and np.array_equal(out["weights"], payload["weights"])
    assert out["bs_style"] == "lbs"


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, v_template=np.ones((2, 3)), evil=np.array([_RunsShell("true")], dtype=object))
    out = load_model_arrays(path)
    assert set(out) == {"v_template"}


def test_not_a_dict_and_garbage(tmp_path):
    p = tmp_path / "list.pkl"
    p.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ModelFileError, match="expected a dict"):
        safe_load_pickle(p)
    g = tmp_path / "garbage.pkl"
    g.write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(ModelFileError, match="garbage.pkl"):
        safe_load_pickle(g)


@pytest.mark.parametrize("content, why", [
    (b"\x8e\xb0\xbe\xb2\xa1c\xf3.X", "MemoryError"),       # BINBYTES8 declaring ~5e18 bytes
    (b"\x96Iq\x17\x98\xccbQ\x93", "OverflowError"),        # BYTEARRAY8 with a length beyond ssize_t
    (bytes(range(256)), ""),
    (b"", "EOFError"),
])
def test_random_bytes_pickle_is_a_model_file_error(tmp_path, content, why):
    """Issue 21: random bytes as a .pkl model file ended in MemoryError (an internal error); now a
    ModelFileError naming the file."""
    p = tmp_path / "SMPLX_NEUTRAL.pkl"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"{p.name}: .*{why}") as e:
        load_model_arrays(p)
    assert str(e.value).startswith(str(p))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", np.arange(3).tobytes()])
def test_empty_or_corrupt_npz_model_file_is_a_model_file_error(tmp_path, content):
    """Issue 21: a 0-byte .npz raised EOFError, which click turns into 'Aborted' (exit 130)."""
    p = tmp_path / "SMPLX_NEUTRAL.npz"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match="SMPLX_NEUTRAL.npz: ") as e:
        load_model_arrays(p)
    assert not isinstance(e.value.__cause__, KeyboardInterrupt)
