"""Drift detection: a family of detectors reading one forward pass of the classifier (PaDiM on
its feature maps, a Ledoit-Wolf Gaussian of its pooled features), streaming fits, calibrated
thresholds, and their combination into one decision. Pure torch (anomalib is imported only by
:class:`PadimFeatures`); see ``docs/DRIFT.md``.
"""

from __future__ import annotations

from vqc.lazy import lazy_exports

#: Each public name and the module it lives in, imported when first used: ``vqc.drift.config``
#: and the detectors' options are read before torch is imported.
_EXPORTS = {
    "GLOBAL": "base",
    "DriftDetector": "base",
    "ForwardOutputs": "base",
    "pick_columns": "base",
    "DriftSettings": "config",
    "drift_settings": "config",
    "Combination": "ensemble",
    "DriftEnsemble": "ensemble",
    "build_ensemble": "ensemble",
    "ClassifierFeatures": "features",
    "FeatureSource": "features",
    "PadimEmbedding": "features",
    "PadimFeatures": "features",
    "forward_outputs": "features",
    "forward_with_maps": "features",
    "select_channels": "features",
    "upsample_nearest": "features",
    "GaussianStats": "gaussian",
    "StreamingGaussian": "gaussian",
    "cholesky_inverse": "gaussian",
    "limit_threads": "gaussian",
    "mahalanobis": "gaussian",
    "FIT_ON": "padim",
    "DriftConfig": "padim",
    "PadimConfig": "padim",
    "PadimDetector": "padim",
    "PooledConfig": "pooled",
    "PooledGaussian": "pooled",
    "StreamingMoments": "pooled",
    "ledoit_wolf": "pooled",
    "build_detector": "registry",
    "detector_class": "registry",
    "detector_types": "registry",
    "register": "registry",
    "gaussian_blur": "smoothing",
    "DriftThreshold": "threshold",
    "calibrate_threshold": "threshold",
    "f1_threshold": "threshold",
    "fit_threshold": "threshold",
    "min_normal_count": "threshold",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
__all__ = sorted(_EXPORTS)
