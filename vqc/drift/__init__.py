"""Drift detection: a family of detectors reading one forward pass of the classifier (PaDiM on
its feature maps, a Ledoit-Wolf Gaussian of its pooled features), streaming fits, calibrated
thresholds, and their combination into one decision. Pure torch (anomalib is imported only by
:class:`PadimFeatures`); see ``docs/DRIFT.md``.
"""

from __future__ import annotations

from vqc.drift.base import GLOBAL, DriftDetector, ForwardOutputs, pick_columns
from vqc.drift.config import DriftSettings, drift_settings
from vqc.drift.ensemble import Combination, DriftEnsemble, build_ensemble
from vqc.drift.features import (
    ClassifierFeatures,
    FeatureSource,
    PadimEmbedding,
    PadimFeatures,
    forward_outputs,
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
from vqc.drift.padim import FIT_ON, DriftConfig, PadimConfig, PadimDetector
from vqc.drift.pooled import PooledConfig, PooledGaussian, StreamingMoments, ledoit_wolf
from vqc.drift.registry import build_detector, detector_class, detector_types, register
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
    "Combination",
    "DriftConfig",
    "DriftDetector",
    "DriftEnsemble",
    "DriftSettings",
    "DriftThreshold",
    "FeatureSource",
    "ForwardOutputs",
    "GaussianStats",
    "PadimConfig",
    "PadimDetector",
    "PadimEmbedding",
    "PadimFeatures",
    "PooledConfig",
    "PooledGaussian",
    "StreamingGaussian",
    "StreamingMoments",
    "build_detector",
    "build_ensemble",
    "calibrate_threshold",
    "cholesky_inverse",
    "detector_class",
    "detector_types",
    "drift_settings",
    "f1_threshold",
    "fit_threshold",
    "forward_outputs",
    "forward_with_maps",
    "gaussian_blur",
    "ledoit_wolf",
    "limit_threads",
    "mahalanobis",
    "min_normal_count",
    "pick_columns",
    "register",
    "select_channels",
    "upsample_nearest",
]
