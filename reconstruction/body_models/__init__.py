"""Body models behind one interface (`BodyModel`), all in Doppel's frame (metres, +Y up, facing +Z).

- `AnnyModel`: the default (Anny: phenotype shape parameters, 52 ARKit facial actions, several rigs).
- `SMPLXModel`, `FLAMEModel`: through the `smplx` package, from model files the user downloads under
  their own licence (found via an explicit path or ``$DOPPEL_MODELS_DIR``); ``.pkl`` files are read with
  a restricted unpickler that never runs code.
"""

from reconstruction.body_models.anny_model import ANNY_RIGS, AnnyModel
from reconstruction.body_models.base import (
    BindState,
    BodyModel,
    BodyOutput,
    BodyParams,
    ModelFileError,
    Skeleton,
    SkinWeights,
)

__all__ = ["ANNY_RIGS", "AnnyModel", "BindState", "BodyModel", "BodyOutput", "BodyParams", "ModelFileError",
           "Skeleton", "SkinWeights"]
