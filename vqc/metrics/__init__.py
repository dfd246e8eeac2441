"""Scoring: Penalty Weighted Accuracy, what it hides, and cost-sensitive decisions.

Pure torch and torchmetrics; see ``docs/SCORING.md`` for how to read each figure.
"""

from vqc.metrics.cost import (
    OFFICIAL_COST_MATRIX,
    PAGE_COST_MATRIX,
    load_cost_matrix,
    official_cost_matrix,
    page_cost_matrix,
    sub_matrix,
    validate_cost_matrix,
)
from vqc.metrics.decision import (
    DECISION_RULES,
    TemperatureScaler,
    argmax_decision,
    bayes_decision,
    decide,
    decision_cost,
    expected_costs,
)
from vqc.metrics.pwa import (
    PenaltyWeightedAccuracy,
    confusion_counts,
    penalty_weighted_accuracy,
    pwa_from_confusion,
)
from vqc.metrics.report import (
    DEFAULT_COLLAPSE_SHARE,
    ConstantPredictor,
    ScoreReport,
    ScoringMetrics,
    classes_for_matrix,
    compare_decisions,
    decisions_markdown,
    score_predictions,
)

__all__ = [
    "DECISION_RULES",
    "DEFAULT_COLLAPSE_SHARE",
    "OFFICIAL_COST_MATRIX",
    "PAGE_COST_MATRIX",
    "ConstantPredictor",
    "PenaltyWeightedAccuracy",
    "ScoreReport",
    "ScoringMetrics",
    "TemperatureScaler",
    "argmax_decision",
    "bayes_decision",
    "classes_for_matrix",
    "compare_decisions",
    "confusion_counts",
    "decide",
    "decision_cost",
    "decisions_markdown",
    "expected_costs",
    "load_cost_matrix",
    "official_cost_matrix",
    "page_cost_matrix",
    "penalty_weighted_accuracy",
    "pwa_from_confusion",
    "score_predictions",
    "sub_matrix",
    "validate_cost_matrix",
]
