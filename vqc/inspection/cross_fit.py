"""Drift calibrated on the training and validation images together, by cross-fitting.

A threshold calibrated on validation alone is the largest of a few hundred scores at a budget
of 0.5%: one new in-distribution image in a few hundred still lands over it, and on a cost
matrix where a GOOD part called drift costs as much as an escape, that one image is the whole
cost budget. The training images would give five times the scores, but a detector scores its
own fitting images low. Cross-fitting removes that bias: the labelled images are cut into
``K`` folds, the drift detectors are fitted ``K`` times, each time on every fold but one, and
score the fold left out; the threshold comes from these out-of-fold scores, and the detectors
kept are fitted on every labelled image.

This is valid only where the detectors read features the training has not learnt: a
fine-tuned network's own embedding of its training images is tighter than of any image it has
not seen, so their scores would not be those of new images. Drift detectors on the pooled
embedding are therefore refused (``drift_settings``, before any training); detectors on a
frozen layer (``drift=stats_gate``) are what it is for. Defect gates are left as they are
(fitted on training GOOD, calibrated on validation GOOD): the gate reads the embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from vqc.drift import DriftEnsemble, build_ensemble
from vqc.drift.base import score_loader
from vqc.drift.config import DriftSettings

log = logging.getLogger(__name__)

#: ``indices`` of the labelled images -> their ``(ForwardOutputs, codes, libs)`` batches.
Batches = Callable[[torch.Tensor], Iterable[Sequence[Any]]]


def fold_of(count: int, folds: int, seed: int = 0) -> torch.Tensor:
    """Each of ``count`` images' fold, ``0 .. folds - 1``, at random (sizes differ by <= 1)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    fold = torch.empty(count, dtype=torch.long)
    fold[order] = torch.arange(count) % folds
    return fold


def cross_fit_drift(ensemble: DriftEnsemble, settings: DriftSettings, classifier: Any,
                    count: int, batches: Batches, good_code: int | None = None,
                    seed: int = 0, progress: Callable[[], None] | None = None) -> DriftEnsemble:
    """Replace ``ensemble``'s drift detectors (fitted and calibrated as usual) by ones fitted
    on all ``count`` labelled images and calibrated on their out-of-fold scores; its defect
    gates stay. ``progress`` is called after each of the ``K + 1`` fits. Returns
    ``ensemble``."""
    roles = settings.roles or {}
    entries = {n: e for n, e in settings.detectors.items() if roles.get(n, "drift") == "drift"}

    def build() -> DriftEnsemble:
        return build_ensemble(entries, classifier, settings.target_rate,
                              {n: "drift" for n in entries}, settings.gate_rate)

    fold = fold_of(count, settings.cross_fit, seed)
    scores = torch.empty(count, len(entries), dtype=torch.float32)
    codes = torch.empty(count, dtype=torch.long)
    libs: list[str | None] = [None] * count
    with_libs = True
    for k in range(settings.cross_fit):
        held_out = torch.nonzero(fold == k).reshape(-1)
        part = build().fit(batches(torch.nonzero(fold != k).reshape(-1)))
        part_scores, part_codes, part_libs = score_loader(batches(held_out), part.raw_scores)
        scores[held_out], codes[held_out] = part_scores.float(), part_codes
        with_libs = with_libs and part_libs is not None
        for i, lib in zip(held_out.tolist(), part_libs or [], strict=False):
            libs[i] = lib
        if progress is not None:
            progress()
    final = build().fit(batches(torch.arange(count)))
    if progress is not None:
        progress()
    threshold = final.calibrate_scores(scores, codes, libs if with_libs else None,  # type: ignore[arg-type]
                                       settings.target_rate, settings.per_lib_thresholds,
                                       good_code=good_code)
    for name in entries:
        ensemble.detectors[name] = final.detectors[name]
    ensemble.threshold = threshold
    log.info("drift threshold %.4g by %d-fold cross-fitting on %d training and validation "
             "images (detectors: %s)", threshold.threshold, settings.cross_fit, count,
             ", ".join(entries))
    return ensemble
