"""Each known class's false-drift rate, from what calling it drift costs.

A drift threshold bounds the share of known images called drift. Treated alike, the rarest
and strangest known images set it: on ELPV's cells, the two most damaged cells of 806. But a
defect called drift is still taken off the line, and the official matrix prices it at 1,000,
a tenth of a GOOD part called drift (10,000). With ``drift.rate_by_cost``, GOOD keeps
``target_rate`` and every other class gets ``target_rate * C[GOOD, drift] / C[class, drift]``,
at least ``target_rate`` and at most ``MAX_FACTOR`` times it: the expected cost of a false
drift is then about the same whatever the part.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqc.classes import ClassSet
from vqc.drift.config import MAX_RATE_FACTOR as MAX_FACTOR


def why_not_by_cost(cost_matrix: Sequence[Sequence[float]], classes: ClassSet) -> str | None:
    """Why the rates cannot follow the costs for this data set, or ``None`` when they can."""
    good, drift = classes.good_code, classes.open_set_code
    if good is None:
        return "the data set has no GOOD class (data.classes.good)"
    if drift is None:
        return "the data set has no open-set class (data.classes.open_set)"
    if len(cost_matrix) <= max(good, drift):
        return f"the cost matrix has no row for class codes {good} and {drift}"
    if float(cost_matrix[good][drift]) <= 0:
        return "the cost matrix prices a GOOD part called drift at 0"
    return None


def class_drift_rates(cost_matrix: Sequence[Sequence[float]], classes: ClassSet,
                      target_rate: float) -> dict[int, float] | None:
    """``{known class code: its false-drift rate}``, or ``None`` where :func:`why_not_by_cost`
    gives a reason: then every known image counts alike."""
    if why_not_by_cost(cost_matrix, classes) is not None:
        return None
    good, drift = int(classes.good_code), int(classes.open_set_code)  # type: ignore[arg-type]
    reference = float(cost_matrix[good][drift])
    rates = {}
    for code in classes.trained_codes:
        cost = float(cost_matrix[code][drift])
        factor = MAX_FACTOR if cost <= 0 else min(max(reference / cost, 1.0), MAX_FACTOR)
        rates[code] = target_rate * factor
    return rates
