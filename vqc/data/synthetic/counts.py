"""The classes of a set and how many images of each: the real mix, floors, die preference."""

from __future__ import annotations

import math
from collections.abc import Mapping

from vqc.classes import CHALLENGE_CLASS_NAMES, CHALLENGE_GOOD, CHALLENGE_OPEN_SET
from vqc.errors import ConfigError

GOOD = CHALLENGE_GOOD
DRIFT = CHALLENGE_OPEN_SET
BOUCLE_PLATE, LIFT_OFF_BLANC, LIFT_OFF_NOIR, MISSING, SHORT_CIRCUIT = CHALLENGE_CLASS_NAMES[1:6]
TRAINED_CLASSES: tuple[str, ...] = tuple(n for n in CHALLENGE_CLASS_NAMES if n != DRIFT)

#: Images per class in the real training set; the default class mix follows it.
REAL_TRAIN_COUNTS: dict[str, int] = {
    GOOD: 1235,
    BOUCLE_PLATE: 71,
    LIFT_OFF_BLANC: 270,
    LIFT_OFF_NOIR: 104,
    MISSING: 6472,
    SHORT_CIRCUIT: 126,
}

#: Relative weight of Die01..Die04 per class: rare defects lean towards particular dies.
DIE_PREFERENCE: dict[str, tuple[float, ...]] = {
    GOOD: (1.0, 1.0, 1.0, 1.0),
    BOUCLE_PLATE: (1.0, 2.5, 1.0, 0.6),
    LIFT_OFF_BLANC: (0.7, 1.0, 1.0, 2.0),
    LIFT_OFF_NOIR: (1.0, 0.6, 2.5, 1.0),
    MISSING: (1.0, 1.0, 1.0, 1.0),
    SHORT_CIRCUIT: (2.2, 1.0, 0.6, 1.0),
}

DEFAULT_CLASS_FLOOR = 25
DEFAULT_DRIFT_FRACTION = 0.07


def class_counts(total: int, floor: int = 0,
                 weights: Mapping[str, float] | None = None) -> dict[str, int]:
    """Split ``total`` images over the classes in proportion to ``weights``, at least ``floor``.

    Classes whose share falls under the floor get the floor; the rest share what remains in
    proportion (largest remainders), so the counts add up to ``total`` exactly.
    """
    weights = dict(weights or REAL_TRAIN_COUNTS)
    if total < floor * len(weights):
        raise ConfigError(f"{total} images cannot give {len(weights)} classes {floor} each")
    floored: set[str] = set()
    while True:
        free = [c for c in weights if c not in floored]
        remaining = total - floor * len(floored)
        weight_sum = sum(weights[c] for c in free)
        quotas = {c: remaining * weights[c] / weight_sum for c in free} if weight_sum else {}
        low = {c for c, q in quotas.items() if q < floor}
        if not low:
            break
        floored |= low
    counts = {c: floor for c in floored}
    counts.update({c: math.floor(q) for c, q in quotas.items()})
    short = total - sum(counts.values())
    by_remainder = sorted(quotas, key=lambda c: (-(quotas[c] - math.floor(quotas[c])),
                                                 list(weights).index(c)))
    for name in by_remainder[:short]:
        counts[name] += 1
    return {c: counts[c] for c in weights}


def split_counts(n_train: int, n_test: int, class_floor: int,
                 drift_fraction: float) -> tuple[dict[str, int], dict[str, int]]:
    """Train and test class counts: the real mix, floors, and Drift in test only."""
    train = class_counts(n_train, class_floor)
    n_drift = 0
    if n_test > 0 and drift_fraction > 0:
        n_drift = min(n_test, max(1, round(n_test * drift_fraction)))
    rest = n_test - n_drift
    scaled_floor = math.ceil(class_floor * n_test / n_train) if n_train else 0
    test_floor = min(scaled_floor, rest // len(TRAINED_CLASSES))
    test = class_counts(rest, test_floor)
    test[DRIFT] = n_drift
    return train, test
