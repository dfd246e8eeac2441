"""Fitting the drift detectors on a trained classifier and assembling the inspector."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from vqc.data.datamodule import VqcDataModule
from vqc.data.dataset import frame_batches
from vqc.drift import ForwardOutputs, build_ensemble, drift_settings, forward_outputs
from vqc.errors import ConfigError
from vqc.inspection.cross_fit import OutputStore, cross_fit_drift
from vqc.inspection.drift_rates import class_drift_rates, why_not_by_cost
from vqc.inspection.inspector import Inspector, InspectorSpec
from vqc.models import Classifier
from vqc.progress import batch_rows, phase

log = logging.getLogger(__name__)


def by_cost_rates(spec: InspectorSpec, target_rate: float) -> dict[int, float] | None:
    """``drift.rate_by_cost``: each known class's false-drift rate, logged; a warning (and
    ``None``: one rate for all) where the data set or the cost matrix does not allow it."""
    rates = class_drift_rates(spec.cost_matrix, spec.classes, target_rate)
    if rates is None:
        warnings.warn(f"drift.rate_by_cost=true is not applied: "
                      f"{why_not_by_cost(spec.cost_matrix, spec.classes)}; every known image "
                      f"has the budget drift.target_rate={target_rate:g}", stacklevel=2)
        return None
    log.info("drift budgets by cost: %s", ", ".join(
        f"{spec.class_names[code]} {rate:.3g}" for code, rate in rates.items()))
    return rates


@torch.no_grad()
def forward_batches(classifier: Classifier, batches: Iterable[Sequence[Any]],
                    layers: Sequence[str]) -> Iterator[tuple[ForwardOutputs, Any, Any]]:
    """``(images, codes, libs)`` -> ``(ForwardOutputs, codes, libs)``: one forward pass per
    batch serves every detector."""
    for images, codes, libs in batches:
        yield forward_outputs(classifier, images, layers), codes, libs


def fit_inspector(classifier: Classifier, datamodule: VqcDataModule, spec: InspectorSpec,
                  drift_cfg: Mapping[str, Any] | None, batch_size: int = 64,
                  train_frame: pd.DataFrame | None = None,
                  val_frame: pd.DataFrame | None = None) -> Inspector:
    """The inspector of ``classifier``; with drift enabled, its detectors fitted on the training
    table and calibrated on the validation table (the cached, preprocessed images, no
    augmentation). ``train_frame``, ``val_frame``: part of those tables instead (a limited
    run's)."""
    classifier.eval()
    train_frame = datamodule.train_frame if train_frame is None else train_frame
    val_frame = datamodule.val_frame if val_frame is None else val_frame
    drift = None
    if drift_cfg and drift_cfg.get("enabled", False):
        classes = datamodule.classes
        if classes.open_set_code is None:
            raise ConfigError("drift.enabled needs an open-set class (data.classes.open_set); "
                              "use drift=none for data sets without one")
        settings = drift_settings(drift_cfg, classes.good_code)
        drift = build_ensemble(settings.detectors, classifier, settings.target_rate,
                               settings.roles, settings.gate_rate)
        if val_frame is None or len(val_frame) == 0:
            raise ConfigError("drift calibration needs a validation set (data.val_fraction > 0)")
        labelled = pd.concat([train_frame, val_frame], ignore_index=True)

        def batches_of(rows: torch.Tensor) -> Iterator[tuple[ForwardOutputs, Any, Any]]:
            return forward_batches(classifier, frame_batches(
                labelled.iloc[rows.tolist()], datamodule.cache, datamodule.eval_transform,
                batch_size), drift.layers)

        if settings.cross_fit:  # the K + 2 fits read one forward pass, kept in memory
            with phase("drift features", len(labelled)) as step:
                store = OutputStore.collect(step.track(batches_of(torch.arange(len(labelled))),
                                                       batch_rows), len(labelled), batch_size)
            batches_of = store.batches if store is not None else batches_of
        train_rows = torch.arange(len(train_frame))
        with phase("drift fit", len(train_frame)) as step:
            drift.fit(step.track(batches_of(train_rows), batch_rows))
        rates = by_cost_rates(spec, settings.target_rate) if settings.rate_by_cost else None
        with phase("drift calibration", len(val_frame)) as step:
            threshold = drift.calibrate(
                step.track(batches_of(torch.arange(len(train_frame), len(labelled))), batch_rows),
                target_rate=settings.target_rate, per_lib=settings.per_lib_thresholds,
                good_code=classes.good_code, class_rates=rates)
        log.info("drift threshold %.4g (%s; detectors: %s; defect gate: %s)",
                 threshold.threshold, threshold.method, ", ".join(drift.drift_names),
                 ", ".join(drift.gate_names) or "none")
        if settings.cross_fit:
            with phase(f"drift cross-fit ({len(labelled)} images, {settings.cross_fit} folds)",
                       settings.cross_fit + 1, unit="fits") as step:
                cross_fit_drift(drift, settings, classifier, len(labelled), batches_of,
                                classes.good_code, progress=step.advance, class_rates=rates)
    return Inspector(classifier, spec, drift)
