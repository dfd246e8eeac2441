"""Fitting the drift detector on a trained classifier and assembling the inspector."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from vqc.data.datamodule import VqcDataModule
from vqc.data.dataset import frame_batches
from vqc.drift import DriftConfig
from vqc.errors import ConfigError
from vqc.inspection.inspector import Inspector, InspectorSpec, shared_drift_detector
from vqc.models import Classifier

log = logging.getLogger(__name__)

_DRIFT_FIELDS = {f.name for f in fields(DriftConfig)}


def drift_options(cfg: Mapping[str, Any], good_code: int | None) -> dict[str, Any]:
    """``DriftConfig`` keyword arguments from the ``drift`` config group."""
    known = _DRIFT_FIELDS | {"enabled", "target_rate", "per_lib_thresholds"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"drift: unknown key(s) {unknown}; known: {sorted(known)}")
    options = {k: v for k, v in cfg.items() if k in _DRIFT_FIELDS and v is not None}
    if "layers" in options:
        options["layers"] = tuple(options["layers"])
    if good_code is not None:
        options.setdefault("good_code", good_code)
    return options


def fit_inspector(classifier: Classifier, datamodule: VqcDataModule, spec: InspectorSpec,
                  drift_cfg: Mapping[str, Any] | None, batch_size: int = 64) -> Inspector:
    """The inspector of ``classifier``; with drift enabled, fitted on the training table and
    calibrated on the validation table (the cached, preprocessed images, no augmentation)."""
    classifier.eval()
    drift = None
    if drift_cfg and drift_cfg.get("enabled", False):
        classes = datamodule.classes
        if classes.open_set_code is None:
            raise ConfigError("drift.enabled needs an open-set class (data.classes.open_set); "
                              "use drift=none for data sets without one")
        drift = shared_drift_detector(classifier, **drift_options(drift_cfg, classes.good_code))
        transform = datamodule.eval_transform
        drift.fit(frame_batches(datamodule.train_frame, datamodule.cache, transform,
                                batch_size))
        if datamodule.val_frame is None or len(datamodule.val_frame) == 0:
            raise ConfigError("drift calibration needs a validation set (data.val_fraction > 0)")
        threshold = drift.calibrate(
            frame_batches(datamodule.val_frame, datamodule.cache, transform, batch_size),
            target_rate=float(drift_cfg.get("target_rate", 0.005)),
            per_lib=bool(drift_cfg.get("per_lib_thresholds", False)))
        log.info("drift threshold %.4g (%s)", threshold.threshold, threshold.method)
    return Inspector(classifier, spec, drift)
