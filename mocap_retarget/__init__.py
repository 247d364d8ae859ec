"""mocap_retarget."""

import core  # noqa: F401 - first: OpenMP's passive wait policy before torch loads (core/runtime.py)
