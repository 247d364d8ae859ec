"""Fixtures shared by the reconstruction tests."""

from __future__ import annotations

import pytest


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
