"""Shared test setup: the `gpu` marker skips without CUDA; tolerances live with the tests that use them."""

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
