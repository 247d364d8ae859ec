"""doppel: the application (CLI, pipeline orchestration, virtual actor, reports, consent gates)."""

from importlib import metadata as _metadata

import core  # noqa: F401 - first: OpenMP's passive wait policy before torch loads (core/runtime.py)

try:
    __version__ = _metadata.version("doppel")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
