"""rigging: `Rig` (skeleton, bind mesh + UVs, sparse skin weights, blendshapes, pose correctives), LBS/DQS
posing, save/load (rig.npz + manifest.json), validation."""

import core  # noqa: F401 - first: OpenMP's passive wait policy before torch loads (core/runtime.py)
from rigging.animation import Animation, AnimationError
from rigging.rig import RIG_SCHEMA_VERSION, Rig, RigError

__all__ = ["RIG_SCHEMA_VERSION", "Animation", "AnimationError", "Rig", "RigError"]
