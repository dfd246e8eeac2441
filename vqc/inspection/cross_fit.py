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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from vqc.drift import DriftEnsemble, ForwardOutputs, build_ensemble
from vqc.drift.base import score_loader
from vqc.drift.config import DriftSettings

log = logging.getLogger(__name__)

#: ``indices`` of the labelled images -> their ``(ForwardOutputs, codes, libs)`` batches.
Batches = Callable[[torch.Tensor], Iterable[Sequence[Any]]]


#: Memory the labelled images' forward outputs may take to be kept for the ``K + 1`` fits
#: (and the usual fit and calibration) instead of recomputed for each.
STORE_BYTES = 2 * 2**30


def _tensors(outputs: ForwardOutputs) -> list[torch.Tensor]:
    return [t for t in (outputs.pooled, outputs.logits, outputs.images, *outputs.maps.values())
            if t is not None]


def _take(outputs: ForwardOutputs, rows: torch.Tensor) -> ForwardOutputs:
    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.index_select(0, rows)

    return ForwardOutputs({name: m.index_select(0, rows) for name, m in outputs.maps.items()},
                          pick(outputs.pooled), pick(outputs.logits), outputs.image_size,
                          pick(outputs.images))


def _join(parts: list[ForwardOutputs]) -> ForwardOutputs:
    def cat(ts: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if ts[0] is None else torch.cat(ts)  # type: ignore[arg-type]

    first = parts[0]
    return ForwardOutputs({name: torch.cat([p.maps[name] for p in parts]) for name in first.maps},
                          cat([p.pooled for p in parts]), cat([p.logits for p in parts]),
                          first.image_size, cat([p.images for p in parts]))


class OutputStore:
    """The forward outputs of every labelled image, computed once and served again as batches
    of any rows: the cross-fit's ``K + 1`` fits then cost one forward pass, not ``K + 2``."""

    def __init__(self, outputs: ForwardOutputs, codes: torch.Tensor, libs: list[Any],
                 batch_size: int) -> None:
        self.outputs, self.codes, self.libs = outputs, codes, libs
        self.batch_size = batch_size

    @classmethod
    def collect(cls, batches: Iterable[Sequence[Any]], count: int, batch_size: int,
                max_bytes: int = STORE_BYTES) -> OutputStore | None:
        """Keep every batch's outputs on the CPU; None (after one batch) when ``count`` images'
        would take more than ``max_bytes``."""
        parts, codes, libs = [], [], []
        for outputs, batch_codes, batch_libs in batches:
            outputs = outputs.detached()
            outputs = _take(outputs, torch.arange(len(outputs)))  # CPU copies, not views
            if not parts:
                per_image = sum(t.element_size() * t[0].numel() for t in _tensors(outputs))
                if per_image * count > max_bytes:
                    log.info("cross-fit: %d images' outputs would take %.1f GiB: recomputed "
                             "for each fit instead", count, per_image * count / 2**30)
                    return None
            parts.append(outputs)
            codes.append(torch.as_tensor(batch_codes).reshape(-1))
            libs.extend(batch_libs if batch_libs is not None else [None] * len(outputs))
        return cls(_join(parts), torch.cat(codes), libs, batch_size)

    def batches(self, rows: torch.Tensor) -> Iterator[tuple[ForwardOutputs, torch.Tensor, list]]:
        """``(outputs, codes, libs)`` of ``rows``, ``batch_size`` at a time."""
        for start in range(0, len(rows), self.batch_size):
            part = rows[start:start + self.batch_size]
            yield (_take(self.outputs, part), self.codes.index_select(0, part),
                   [self.libs[i] for i in part.tolist()])


def fold_of(count: int, folds: int, seed: int = 0) -> torch.Tensor:
    """Each of ``count`` images' fold, ``0 .. folds - 1``, at random (sizes differ by <= 1)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    fold = torch.empty(count, dtype=torch.long)
    fold[order] = torch.arange(count) % folds
    return fold


def cross_fit_drift(ensemble: DriftEnsemble, settings: DriftSettings, classifier: Any,
                    count: int, batches: Batches, good_code: int | None = None,
                    seed: int = 0, progress: Callable[[], None] | None = None,
                    class_rates: Mapping[int, float] | None = None) -> DriftEnsemble:
    """Replace ``ensemble``'s drift detectors (fitted and calibrated as usual) by ones fitted
    on all ``count`` labelled images and calibrated on their out-of-fold scores; its defect
    gates stay. ``progress`` is called after each of the ``K + 1`` fits; ``class_rates``: each
    known class's false-drift rate (``vqc.inspection.drift_rates``). Returns ``ensemble``."""
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
                                       good_code=good_code, class_rates=class_rates)
    for name in entries:
        ensemble.detectors[name] = final.detectors[name]
    ensemble.threshold = threshold
    log.info("drift threshold %.4g by %d-fold cross-fitting on %d training and validation "
             "images (detectors: %s)", threshold.threshold, settings.cross_fit, count,
             ", ".join(entries))
    return ensemble
