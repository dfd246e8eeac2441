"""Scoring an inspector on a labelled table: the decision report plus the drift figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from vqc.data.cache import ImageCache
from vqc.data.dataset import frame_batches
from vqc.inspection.inspector import Inspection, Inspector
from vqc.metrics import ScoreReport, ScoringMetrics
from vqc.metrics.render import inspection_markdown
from vqc.progress import batch_rows, phase


@dataclass
class InspectionReport:
    """Decisions of the whole pipeline on a test table, and how well drift was told apart."""

    report: ScoreReport
    classifier_only: ScoreReport     # the classifier's argmax, drift never decided
    drift_auroc: float | None        # drift score separating open-set images from the rest
    false_drift_rate: float | None   # known-class images flagged as drift
    drift_recall: float | None       # open-set images flagged as drift
    predictions: pd.DataFrame        # one row per image: decision, reason, scores
    drift_note: str | None = None    # what the drift figures say, or why there are none

    def to_markdown(self) -> str:
        """The whole inspection first, beside the classifier alone (argmax), then in detail;
        without drift images, why no drift figure could be scored."""
        text = inspection_markdown(self.report, self.classifier_only, self.drift_auroc,
                                   self.false_drift_rate, self.drift_recall, "argmax")
        if self.drift_note and self.drift_recall is None:
            text = text.rstrip("\n") + "\n\n## Drift\n\n" + self.drift_note + "\n"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"report": self.report.to_dict(), "classifier_only": self.classifier_only.to_dict(),
                "drift_auroc": self.drift_auroc, "false_drift_rate": self.false_drift_rate,
                "drift_recall": self.drift_recall, "drift_note": self.drift_note}


def drift_note(open_set: str | None, n_open: int, n_known: int, auroc: float | None,
               false_drift: float | None, recall: float | None) -> str | None:
    """One paragraph on drift for the report; ``None`` without a drift detector."""
    if false_drift is None and recall is None:
        return None
    flagged = ("" if false_drift is None else
               f"Known-class test images flagged as drift: {false_drift:.2%} of {n_known}.")
    if n_open == 0:
        return (f"No drift figure (drift AUROC, drift caught) can be scored: the test split has "
                f"no images labelled {open_set!r}. {flagged} The threshold was calibrated on "
                "validation images to the false-drift budget (drift.target_rate); to measure "
                f"how much drift it catches, add images labelled {open_set!r} to the test "
                "split.").strip()
    caught = "" if recall is None else f"Drift caught: {recall:.2%} of {n_open} images. "
    area = "" if auroc is None else f"Drift AUROC: {auroc:.4f}. "
    return f"{area}{caught}{flagged}".strip()


def run_inspector(inspector: Inspector, frame: pd.DataFrame, cache: ImageCache,
                  batch_size: int = 64) -> tuple[list[Inspection], np.ndarray]:
    """Inspections of every row of ``frame`` (cached, preprocessed images), and their codes."""
    results, codes = [], []
    with phase("scoring", len(frame)) as step:
        for images, batch_codes, libs in step.track(
                frame_batches(frame, cache, inspector.normalise, batch_size), batch_rows):
            results.append(inspector(images, libs))
            codes.append(batch_codes.numpy())
    return results, np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)


def evaluate_inspector(inspector: Inspector, frame: pd.DataFrame, cache: ImageCache,
                       batch_size: int = 64) -> InspectionReport:
    classes = inspector.classes
    results, codes = run_inspector(inspector, frame, cache, batch_size)
    decision = torch.cat([r.decision for r in results])
    probs = torch.cat([r.probabilities for r in results])
    is_drift = torch.cat([r.is_drift for r in results])
    target = torch.as_tensor(codes)
    cost = inspector.spec.cost_matrix
    full = ScoringMetrics(cost, classes)
    full.update(decision, target)
    alone = ScoringMetrics(cost, classes)
    alone.update(probs, target)
    drift_auroc = false_drift = drift_recall = None
    open_code = classes.open_set_code
    scores = (torch.cat([r.drift_score for r in results])
              if results and results[0].drift_score is not None else None)
    n_open = n_known = 0
    if scores is not None and open_code is not None:
        is_open = codes == open_code
        n_open, n_known = int(is_open.sum()), int((~is_open).sum())
        known = ~is_open
        if known.any():
            false_drift = float(is_drift.numpy()[known].mean())
        if is_open.any():
            drift_recall = float(is_drift.numpy()[is_open].mean())
        if is_open.any() and known.any():
            from sklearn.metrics import roc_auc_score

            drift_auroc = float(roc_auc_score(is_open, scores.numpy()))
    reasons = [reason for r in results for reason in r.reasons(classes)]
    predictions = pd.DataFrame({
        "filename": frame["filename"].to_numpy(),
        "label": codes,
        "decision": decision.numpy(),
        "reason": reasons,
        "drift_score": None if scores is None else scores.numpy(),
    })
    for j, name in zip(classes.trained_codes, classes.trained_names, strict=True):
        predictions[f"p_{name}"] = probs[:, j].numpy()
    return InspectionReport(full.report(), alone.report(), drift_auroc, false_drift,
                            drift_recall, predictions,
                            drift_note(classes.open_set, n_open, n_known, drift_auroc,
                                       false_drift, drift_recall))
