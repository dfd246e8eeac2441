"""Scoring: Penalty Weighted Accuracy, what it hides, and cost-sensitive decisions.

Pure torch and torchmetrics; see ``docs/SCORING.md`` for how to read each figure. Modules:
``pwa`` (the metric), ``cost`` (matrices), ``decision`` (argmax, Bayes rule, temperature),
``report`` (every figure of one confusion matrix), ``scoring`` (the torchmetrics wrapper that
fills a report), ``render`` (showing a report: terminal, Markdown, figure), ``files`` (reading
predictions, labels and probabilities CSV files and pairing them).
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
from vqc.metrics.render import decisions_markdown
from vqc.metrics.report import (
    DEFAULT_COLLAPSE_SHARE,
    ConstantPredictor,
    ScoreReport,
    classes_for_matrix,
)
from vqc.metrics.scoring import ScoringMetrics, compare_decisions, score_predictions

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
