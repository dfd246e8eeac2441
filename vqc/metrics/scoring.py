"""``ScoringMetrics``: PWA and everything it hides as one torchmetrics ``Metric``, and the
one-call helpers built on it (a report of predictions, argmax against the Bayes rule)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from vqc.classes import ClassSet
from vqc.metrics.cost import CostSpec
from vqc.metrics.decision import decide
from vqc.metrics.pwa import PenaltyWeightedAccuracy, confusion_counts, to_codes
from vqc.metrics.report import (
    DEFAULT_COLLAPSE_SHARE,
    ScoreReport,
    check_collapse_share,
    classes_for_matrix,
)


class ScoringMetrics(PenaltyWeightedAccuracy):
    """PWA and everything it hides, as one ``torchmetrics.Metric`` over a confusion matrix.

    ``compute()`` returns a flat dict of scalar tensors (ready for ``LightningModule.log_dict``):
    ``pwa``, ``pwa_floor``, ``pwa_lift``, ``cost_ratio``, escapes, false alarms, accuracy, macro
    recall and F1, ``recall/NAME``... ``report()`` returns the full ``ScoreReport`` (confusion
    matrices, warnings, Markdown, PNG). Both are exact under DDP: the only state is the summed
    confusion matrix.

    Args:
        cost_matrix: as ``PenaltyWeightedAccuracy``.
        classes: the scored classes (default: the challenge's, see ``classes_for_matrix``).
        score_codes: codes of the columns of ``(N, K)`` scores; by default the trained classes
            when ``K`` is their number, else ``0..K-1``.
        collapse_share: warn when one class takes more than this share of the predictions.
        prefix: put in front of every key of ``compute()``, e.g. ``"val/"``.
    """

    def __init__(
        self,
        cost_matrix: CostSpec = None,
        classes: ClassSet | None = None,
        score_codes: Sequence[int] | None = None,
        collapse_share: float = DEFAULT_COLLAPSE_SHARE,
        prefix: str = "",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(cost_matrix, score_codes, validate_args, **kwargs)
        self.classes = classes_for_matrix(classes, self.num_classes)
        self.collapse_share = check_collapse_share(collapse_share)
        self.prefix = prefix
        if cost_matrix is None:
            self.cost_name = "official"
        elif isinstance(cost_matrix, str | os.PathLike):
            self.cost_name = str(cost_matrix)
        else:
            self.cost_name = ""

    def update(self, preds: Tensor, target: Tensor) -> None:
        codes = self.score_codes
        trained = self.classes.trained_codes
        if codes is None and preds.is_floating_point() and preds.ndim == 2 \
                and preds.shape[1] == len(trained) < self.num_classes:
            codes = trained
        preds, target = to_codes(preds, target, self.num_classes, codes,
                                 validate=self.check_inputs)
        self.confmat += confusion_counts(preds, target, self.num_classes)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        report = self._report_of(self.confmat)
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in
                report.scalars(self.prefix).items()}

    def report(self) -> ScoreReport:
        """The full report, with the confusion matrix summed over all processes."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            confmat = self.confmat.detach().clone()
        return self._report_of(confmat)

    def _report_of(self, confmat: Tensor) -> ScoreReport:
        return ScoreReport.from_confusion(confmat, self.cost, self.classes, self.collapse_share,
                                          self.cost_name)

    def plot(  # type: ignore[override]
        self, val: Any = None, ax: Any = None
    ) -> tuple[Any, Any]:
        """Plot the confusion matrices (``val``/``ax`` are ignored: the figure has two panels)."""
        fig = self.report().confusion_figure()
        return fig, fig.axes


def score_predictions(
    preds: Tensor,
    target: Tensor,
    cost_matrix: CostSpec = None,
    classes: ClassSet | None = None,
    collapse_share: float = DEFAULT_COLLAPSE_SHARE,
) -> ScoreReport:
    """``ScoreReport`` of decided codes (or scores) against true codes, in one call."""
    metric = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
    metric.update(preds, target)
    return metric.report()


def compare_decisions(
    probs: Tensor,
    target: Tensor,
    cost_matrix: CostSpec = None,
    classes: ClassSet | None = None,
    codes: Sequence[int] | None = None,
    drift: Tensor | None = None,
    collapse_share: float = DEFAULT_COLLAPSE_SHARE,
) -> dict[str, ScoreReport]:
    """Reports of the argmax and the Bayes-rule decisions on the same probabilities.

    ``probs`` ``(N, K)`` cover the trained classes ``codes`` (default: those of ``classes``
    that the matrix scores); where ``drift`` is true both decisions answer the open-set class.
    Calibrate ``probs`` first (``TemperatureScaler``) for the Bayes rule to mean anything.
    """
    metric = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
    scored = metric.classes
    if codes is None:
        codes = scored.trained_codes if probs.shape[1] == len(scored.trained_codes) \
            else list(range(probs.shape[1]))
    out = {}
    for rule in ("argmax", "bayes"):
        decided = decide(probs, rule, metric.cost, codes, drift, scored.open_set_code)
        one = ScoringMetrics(cost_matrix, classes, collapse_share=collapse_share)
        one.update(decided, target)
        out[rule] = one.report()
    return out


__all__ = ["ScoringMetrics", "compare_decisions", "score_predictions"]
