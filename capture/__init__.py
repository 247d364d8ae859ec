"""capture: cameras (``Camera``), capture sessions, calibration, landmarks, masks, triangulation."""

import core  # noqa: F401 - first: OpenMP's passive wait policy before torch loads (core/runtime.py)
from capture.camera import Camera

__all__ = ["Camera"]
