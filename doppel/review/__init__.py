"""The review site (`doppel review`) and the 3D viewer of reports: static HTML over a workspace's actors, consents,
lineage and audit log, and over stage folders (3D viewer of glTF exports, videos beside metrics, figures,
provenance), with Google's `<model-viewer>` vendored in ``static/`` (no CDN)."""

from doppel.review.framing import Framing, frame_animation, prepare_viewer
from doppel.review.gather import ReviewData, gather
from doppel.review.site import SiteResult, build_site, make_server

__all__ = ["Framing", "ReviewData", "SiteResult", "build_site", "frame_animation", "gather", "make_server",
           "prepare_viewer"]
