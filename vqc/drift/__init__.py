"""Drift detection: PaDiM Gaussians over backbone features, a streaming fit, calibrated
thresholds. Pure torch (anomalib is imported only by :class:`PadimFeatures`); see
``docs/DRIFT.md``.
"""

from __future__ import annotations

from vqc.drift.detector import FIT_ON, GLOBAL, DriftConfig, DriftDetector
from vqc.drift.features import (
    ClassifierFeatures,
    FeatureSource,
    PadimEmbedding,
    PadimFeatures,
    forward_with_maps,
    select_channels,
    upsample_nearest,
)
from vqc.drift.gaussian import (
    GaussianStats,
    StreamingGaussian,
    cholesky_inverse,
    limit_threads,
    mahalanobis,
)
from vqc.drift.smoothing import gaussian_blur
from vqc.drift.threshold import (
    DriftThreshold,
    calibrate_threshold,
    f1_threshold,
    fit_threshold,
    min_normal_count,
)

__all__ = [
    "FIT_ON",
    "GLOBAL",
    "ClassifierFeatures",
    "DriftConfig",
    "DriftDetector",
    "DriftThreshold",
    "FeatureSource",
    "GaussianStats",
    "PadimEmbedding",
    "PadimFeatures",
    "StreamingGaussian",
    "calibrate_threshold",
    "cholesky_inverse",
    "f1_threshold",
    "fit_threshold",
    "forward_with_maps",
    "gaussian_blur",
    "limit_threads",
    "mahalanobis",
    "min_normal_count",
    "select_channels",
    "upsample_nearest",
]
