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
from reconstruction.body_models.safe_pickle import RestrictedUnpickler, load_model_arrays, safe_load_pickle
from reconstruction.body_models.smplx_model import FLAMEModel, SMPLXModel, find_model_file

__all__ = ["ANNY_RIGS", "AnnyModel", "BindState", "BodyModel", "BodyOutput", "BodyParams", "FLAMEModel",
           "ModelFileError", "RestrictedUnpickler", "SMPLXModel", "Skeleton", "SkinWeights", "find_model_file",
           "load_model_arrays", "safe_load_pickle"]
