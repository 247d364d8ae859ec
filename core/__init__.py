"""core: conventions, errors and on-disk helpers shared by every Doppel package.

It sits below `capture/` in the import order and imports no other Doppel package, so every stage
(capture, neural_render, reconstruction, rigging, mocap_retarget, assets, doppel) can use it.
"""
