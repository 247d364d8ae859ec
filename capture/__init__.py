"""capture: cameras (``Camera``), capture sessions, calibration, landmarks, masks, triangulation."""

from capture.camera import Camera

__all__ = ["Camera"]
