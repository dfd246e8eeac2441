"""The figures of one confusion matrix under a cost matrix, as plain dicts: cost and the best
constant predictor (the floor), per-class figures, GOOD's escapes and false alarms, the most
predicted class. :class:`~vqc.metrics.report.ScoreReport` gathers them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from vqc.errors import DataError


@dataclass(frozen=True)
class ConstantPredictor:
    """Answer ``code`` for every image: its total cost and PWA on the same labels."""

    code: int
    name: str
    cost: float
    pwa: float


def ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def cost_ratio_of(cost: float, floor_cost: float) -> float:
    """``cost / floor_cost``; when the floor is free (one class only), ``inf`` unless free too."""
    if floor_cost:
        return cost / floor_cost
    return math.inf if cost else math.nan


def whole_counts(confmat: Tensor | np.ndarray | Sequence[Sequence[int]], size: int) -> np.ndarray:
    """The confusion matrix as ``int64``, refused unless ``size x size`` non-negative counts."""
    counts = np.asarray(confmat.detach().cpu().numpy() if isinstance(confmat, Tensor) else confmat)
    if counts.shape != (size, size):
        raise DataError(f"confusion matrix shape {counts.shape} does not match the "
                        f"{size}x{size} cost matrix")
    if (counts < 0).any() or not np.equal(np.mod(counts, 1), 0).all():
        raise DataError("confusion matrix must hold non-negative whole counts")
    return counts.astype(np.int64)


def cost_figures(counts: np.ndarray, cost: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Total cost, PWA, every constant predictor, the best of them (the floor) and the lift."""
    n = int(counts.sum())
    max_cost = float(cost.max())
    total = float((counts * cost).sum())

    def pwa_of(c: float) -> float:
        return 1.0 - c / (n * max_cost) if n else math.nan

    # answering j for everything costs sum_i n_i C[i, j]
    constant_costs = counts.sum(axis=1) @ cost
    constants = [ConstantPredictor(j, names[j], float(c), pwa_of(float(c)))
                 for j, c in enumerate(constant_costs)]
    floor = min(constants, key=lambda p: (p.cost, p.code))
    return {"n": n, "total_cost": total, "max_cost": max_cost, "pwa": pwa_of(total),
            "cost_per_image": ratio(total, n), "constants": constants, "floor": floor,
            "pwa_lift": pwa_of(total) - floor.pwa, "cost_ratio": cost_ratio_of(total, floor.cost)}


def class_figures(counts: np.ndarray) -> dict[str, Any]:
    """Accuracy, per-class and macro recall, precision and F1, the row-normalised matrix."""
    size = counts.shape[0]
    support, predicted, tp = counts.sum(axis=1), counts.sum(axis=0), np.diag(counts)
    recall = [ratio(float(tp[i]), float(support[i])) for i in range(size)]
    precision = [ratio(float(tp[i]), float(predicted[i])) for i in range(size)]
    # 2 TP / (2 TP + FP + FN), 0 for a class present but never right
    f1 = [ratio(2.0 * float(tp[i]), float(support[i] + predicted[i])) for i in range(size)]
    present = [i for i in range(size) if support[i] > 0]
    involved = [i for i in range(size) if support[i] + predicted[i] > 0]
    return {
        "accuracy": ratio(float(tp.sum()), float(counts.sum())),
        "macro_recall": float(np.mean([recall[i] for i in present])) if present else math.nan,
        "macro_f1": float(np.mean([f1[i] for i in involved])) if involved else math.nan,
        "support": support.tolist(),
        "predicted": predicted.tolist(),
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "confusion_normalised": [[ratio(float(v), float(support[i])) for v in counts[i]]
                                 for i in range(size)],
    }


def good_figures(counts: np.ndarray, good: int | None, open_set: int | None) -> dict[str, Any]:
    """Defect escapes (a defect predicted good) and false alarms (good predicted otherwise)."""
    if good is None:
        return {"escapes": 0, "defect_images": 0, "escape_rate": math.nan, "false_alarms": 0,
                "good_images": 0, "false_alarm_rate": math.nan}
    support = counts.sum(axis=1)
    defects = [i for i in range(counts.shape[0]) if i not in (good, open_set)]
    escapes, defect_images = int(counts[defects, good].sum()), int(support[defects].sum())
    false_alarms, good_images = int(support[good] - counts[good, good]), int(support[good])
    return {"escapes": escapes, "defect_images": defect_images,
            "escape_rate": ratio(escapes, defect_images), "false_alarms": false_alarms,
            "good_images": good_images, "false_alarm_rate": ratio(false_alarms, good_images)}


def top_figures(counts: np.ndarray, collapse_share: float) -> dict[str, Any]:
    """The most predicted class, its shares of predictions and labels, and the collapse flag."""
    n = int(counts.sum())
    predicted = counts.sum(axis=0)
    top = int(np.argmax(predicted))
    return {"top_code": top, "top_share": ratio(float(predicted[top]), n),
            "top_label_share": ratio(float(counts[top].sum()), n),
            "collapsed": bool(n and predicted[top] / n > collapse_share)}
