"""core: conventions, errors and on-disk helpers shared by every Doppel package.

It sits below `capture/` in the import order and imports no other Doppel package, so every stage
(capture, neural_render, reconstruction, rigging, mocap_retarget, assets, doppel) can use it.
"""

from core.runtime import tune_on_import as _tune_on_import

_tune_on_import()   # OpenMP's passive wait policy, before any Doppel package loads torch (core/runtime.py)
