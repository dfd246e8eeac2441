"""The drift threshold with each known class held to its own false-drift rate: GOOD to the
target, a defect (whose drift answer costs a tenth) to ten times it."""

from __future__ import annotations

import pytest
import torch

from vqc.classes import ClassSet
from vqc.drift import DriftEnsemble, PooledGaussian, drift_settings
from vqc.drift.threshold import DriftThreshold, calibrate_threshold, class_rate_threshold
from vqc.errors import ConfigError
from vqc.inspection.drift_rates import MAX_FACTOR, class_drift_rates, why_not_by_cost
from vqc.metrics import official_cost_matrix

# 99 GOOD scores 1..99; 99 defect scores: 97 at 0.5 and two damaged parts at 500 and 600.
GOOD = torch.arange(1.0, 100.0)
DEFECT = torch.tensor([0.5] * 97 + [500.0, 600.0])
SCORES = torch.cat([GOOD, DEFECT])
CODES = torch.tensor([0] * 99 + [1] * 99)


def test_each_class_bounded_at_its_own_rate() -> None:
    # GOOD at 1%: k = ceil(0.99 * 100) = 99 -> 99; defects at 10%: k = ceil(0.9 * 100) = 90
    # -> 0.5; the threshold is the larger, 99. At 1% for all 198: k = 198 -> 600.
    assert class_rate_threshold(SCORES, CODES, {0: 0.01, 1: 0.1}) == 99.0
    assert calibrate_threshold(SCORES, 0.01) == 600.0
    # classes sharing a rate are calibrated together: 198 scores at 1% -> the largest
    assert class_rate_threshold(SCORES, CODES, {0: 0.01, 1: 0.01}) == 600.0
    with pytest.raises(ConfigError, match=r"no false-drift rate for class code\(s\) \[1\]"):
        class_rate_threshold(SCORES, CODES, {0: 0.01})
    with pytest.raises(ConfigError, match="198 scores but 3 class codes"):
        class_rate_threshold(SCORES, [0, 1, 1], {0: 0.01, 1: 0.1})


def test_rates_follow_the_cost_of_calling_each_class_drift() -> None:
    classes = ClassSet.challenge()
    official = official_cost_matrix().tolist()  # GOOD -> Drift 10,000; defect -> Drift 1,000
    rates = class_drift_rates(official, classes, 0.001)
    assert rates is not None and set(rates) == set(classes.trained_codes)
    assert rates[classes.good_code] == 0.001
    assert all(rates[c] == pytest.approx(0.01) for c in classes.trained_codes
               if c != classes.good_code)
    page = [row[:] for row in official]  # the page's variant: GOOD -> Drift 100, defect 1
    page[classes.good_code][classes.open_set_code] = 100
    for code in classes.trained_codes[1:]:
        page[code][classes.open_set_code] = 1
    capped = class_drift_rates(page, classes, 0.001)
    assert capped is not None and capped[1] == pytest.approx(0.001 * MAX_FACTOR)  # not 100x
    dearer = [row[:] for row in official]
    dearer[1][classes.open_set_code] = 20000  # dearer than GOOD: never below the target
    assert class_drift_rates(dearer, classes, 0.001)[1] == 0.001  # type: ignore[index]
    no_good = ClassSet(classes.names, open_set=classes.names[-1], good=None)
    assert class_drift_rates(official, no_good, 0.001) is None


def test_the_ensemble_threshold_uses_the_class_rates_when_given() -> None:
    def ensemble() -> DriftEnsemble:
        return DriftEnsemble({"pooled": PooledGaussian()})

    raw = SCORES[:, None]
    plain = ensemble().calibrate_scores(raw, CODES, None, target_rate=0.01)
    assert plain.threshold == 600.0
    by_class = ensemble()
    threshold = by_class.calibrate_scores(raw, CODES, None, target_rate=0.01,
                                          class_rates={0: 0.01, 1: 0.1})
    assert threshold.threshold == 99.0 and threshold.target_rate == 0.01
    assert by_class.threshold is threshold
    assert by_class.detectors["pooled"].threshold.threshold == 600.0  # its own, untouched
    damaged = by_class.combination().decide(torch.tensor([[150.0], [99.0]]), None)[3]
    assert damaged.tolist() == [True, False]


def test_the_setting_is_read_and_checked() -> None:
    entry = {"detectors": {"pooled": {"type": "pooled"}}}
    assert drift_settings(entry).rate_by_cost is False
    assert drift_settings({**entry, "rate_by_cost": True}).rate_by_cost is True
    with pytest.raises(ConfigError, match=r"drift\.rate_by_cost"):
        drift_settings({**entry, "rate_by_cost": "maybe"})


def test_several_detectors_use_the_class_rates_on_their_combined_score() -> None:
    ensemble = DriftEnsemble({"a": PooledGaussian(), "b": PooledGaussian()})
    raw = torch.stack([SCORES, SCORES / 2], dim=1)  # b's scores are a's halved
    threshold = ensemble.calibrate_scores(raw, CODES, None, target_rate=0.01,
                                          class_rates={0: 0.01, 1: 0.1})
    combined = ensemble.combination().combine(raw)[0]
    assert threshold.threshold == class_rate_threshold(combined, CODES, {0: 0.01, 1: 0.1})
    assert threshold.class_rates == {"0": 0.01, "1": 0.1}
    restored = DriftThreshold.from_dict(threshold.to_dict())
    assert restored == threshold


def test_a_budget_that_would_reach_one_is_refused_before_training() -> None:
    entry = {"detectors": {"pooled": {"type": "pooled"}}, "rate_by_cost": True}
    with pytest.raises(ConfigError, match=r"drift\.rate_by_cost=true with "
                                          r"drift\.target_rate=0\.1: a defect's budget"):
        drift_settings({**entry, "target_rate": 0.1})
    assert drift_settings({**entry, "target_rate": 0.05}).rate_by_cost
    assert drift_settings({**entry, "target_rate": "auto"}).rate_by_cost


def test_says_why_the_rates_cannot_follow_the_costs() -> None:
    classes = ClassSet.challenge()
    official = official_cost_matrix().tolist()
    assert why_not_by_cost(official, classes) is None
    no_good = ClassSet(classes.names, open_set=classes.names[-1], good=None)
    assert "no GOOD class" in str(why_not_by_cost(official, no_good))
    free = [row[:] for row in official]
    free[classes.good_code][classes.open_set_code] = 0
    assert "prices a GOOD part called drift at 0" in str(why_not_by_cost(free, classes))
    assert "no row" in str(why_not_by_cost([[0, 1], [1, 0]], classes))
