"""Multi-view fitting of a body model to calibrated views: landmark reprojection, silhouettes, priors.

    from reconstruction.fitting import FitConfig, ViewObservations, fit_multiview, landmark_spec

The fitter takes in-memory observations (cameras, per-view 2D landmarks with confidences, person masks),
so it runs on capture sessions and on synthetic data alike.
"""

from reconstruction.fitting.config import FitConfig, resolve_device
from reconstruction.fitting.landmark_regressor import LandmarkRegressor, default_regressor, fit_regressor
from reconstruction.fitting.landmarks import (
    MEDIAPIPE_POSE_TO_ANNY,
    LandmarkSpec,
    calibrated_spec,
    landmark_spec,
    model_landmarks,
)
from reconstruction.fitting.losses import prior_loss, reprojection_loss, silhouette_loss
from reconstruction.fitting.optimizer import FitResult, ViewObservations, fit_multiview

__all__ = ["FitConfig", "FitResult", "LandmarkRegressor", "LandmarkSpec", "calibrated_spec", "default_regressor",
           "fit_regressor", "MEDIAPIPE_POSE_TO_ANNY", "ViewObservations", "fit_multiview",
           "landmark_spec", "model_landmarks", "prior_loss", "reprojection_loss", "resolve_device",
           "silhouette_loss"]
