"""Shared test setup: the `gpu` marker skips without CUDA; a synthetic take (`take`) the fit and retarget tests
share; tolerances live with the tests that use them."""

import os

import pytest

import core  # noqa: F401 - before any test module imports torch: OpenMP's passive wait policy (core/runtime.py)

os.environ.setdefault("WARP_QUIET", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """Run a test on the CPU and, where there is one, on CUDA."""
    return request.param


@pytest.fixture(scope="session")
def take(tmp_path_factory):
    """A 3-frame take (the virtual actor's arms rising), 6 views at 320 px, pose landmarks only: (the synthetic
    capture, its ingest folder)."""
    from capture.ingest import IngestConfig, ingest
    from doppel.synthetic_capture import synthesize_capture

    root = tmp_path_factory.mktemp("take")
    sc = synthesize_capture(root, n_cameras=6, seed=3, size=320, texture_size=256, frames=3)
    ingest(sc.session_dir, root / "ingest", IngestConfig(face=False, hands=False))
    return sc, root / "ingest"
