"""Calibrated thresholds keep the false-drift rate at its target; F1 and per-lib options."""

from __future__ import annotations

import math

import pytest
import torch

from vqc.drift.threshold import (
    DriftThreshold,
    calibrate_threshold,
    f1_threshold,
    fit_threshold,
    min_normal_count,
)
from vqc.errors import ConfigError

TARGET = 0.005


def _exponential(n: int, seed: int) -> torch.Tensor:
    """Scores with a known law: P(S > t) = exp(-t)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.empty(n, dtype=torch.float64).exponential_(generator=generator)


def test_false_drift_rate_on_held_out_normals() -> None:
    scores = _exponential(10_000, seed=0)
    calibration, held_out = scores[:5_000], scores[5_000:]
    threshold = calibrate_threshold(calibration, TARGET)
    rate = float((held_out > threshold).double().mean())
    # Held-out rate: binomial around the threshold's true rate, itself Beta-distributed
    # around the target; 4 standard deviations of both.
    sd = math.sqrt(2 * TARGET * (1 - TARGET) / 5_000)
    assert abs(rate - TARGET) <= 4 * sd
    assert rate <= TARGET + 4 * sd


def test_true_rate_averages_to_the_conformal_level() -> None:
    """Over many calibration sets the exact rate exp(-t) averages (n+1-k)/(n+1) <= target."""
    n = 5_000
    k = math.ceil((1 - TARGET) * (n + 1))
    rates = torch.tensor([math.exp(-calibrate_threshold(_exponential(n, seed), TARGET))
                          for seed in range(200)])
    expected = (n + 1 - k) / (n + 1)
    assert expected <= TARGET
    assert abs(float(rates.mean()) - expected) < 3 * float(rates.std()) / math.sqrt(200) + 1e-5


def test_order_statistic() -> None:
    scores = torch.arange(1.0, 1_001.0)  # 1..1000, shuffled order must not matter
    scores = scores[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    # k = ceil(0.99 * 1001) = 991 -> threshold 991, 9 of 1000 above it
    assert calibrate_threshold(scores, 0.01) == 991.0


def test_too_few_scores_warns_and_uses_the_largest() -> None:
    assert min_normal_count(TARGET) == 199
    with pytest.warns(UserWarning, match="cannot bound"):
        assert calibrate_threshold([1.0, 3.0, 2.0], TARGET) == 3.0
    with pytest.raises(ConfigError):
        calibrate_threshold([], TARGET)
    with pytest.raises(ConfigError):
        calibrate_threshold([1.0, float("nan")], TARGET)


def test_f1_threshold() -> None:
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 2.0, 3.0, 0.35])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1], dtype=torch.bool)
    threshold = f1_threshold(scores, labels)
    assert 0.3 < threshold < 0.35  # flags 0.35, 0.4, 2, 3: F1 = 6/7, the best
    assert f1_threshold(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 1, 0]).bool()) < 1.0
    # ties cannot be split
    tied = f1_threshold(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1, 0, 0]).bool())
    assert 0.0 < tied < 1.0
    with pytest.raises(ConfigError, match="both"):
        f1_threshold(scores, torch.zeros(7, dtype=torch.bool))


def test_per_lib_thresholds_bound_each_lib() -> None:
    a, b = _exponential(4_000, 1), 3.0 + 2.0 * _exponential(4_000, 2)  # lib B scores higher
    c = _exponential(50, 3)  # too few to calibrate alone
    scores = torch.cat([a[:2_000], b[:2_000], c])
    libs = ["A"] * 2_000 + ["B"] * 2_000 + ["C"] * 50
    result = fit_threshold(scores, libs, target_rate=TARGET, per_lib=True)
    assert set(result.per_lib) == {"A", "B"} and result.method == "rate"
    flags_a = result.is_drift(a[2_000:], ["A"] * 2_000).double().mean()
    flags_b = result.is_drift(b[2_000:], ["B"] * 2_000).double().mean()
    sd = math.sqrt(2 * TARGET * (1 - TARGET) / 2_000)
    assert abs(float(flags_a) - TARGET) <= 4 * sd and abs(float(flags_b) - TARGET) <= 4 * sd
    # one global threshold over-flags lib B's in-distribution images
    shared = fit_threshold(scores, target_rate=TARGET)
    assert float(shared.is_drift(b[2_000:]).double().mean()) > 2 * TARGET
    # lib C and unknown libs use the global threshold
    limits = result.for_libs(["C", "Z", "A"], 3)
    assert limits[0] == limits[1] == result.threshold and limits[2] == result.per_lib["A"]


def test_fit_threshold_methods_and_round_trip() -> None:
    normal, drift = _exponential(400, 4), 8.0 + _exponential(20, 5)
    scores = torch.cat([normal, drift])
    labels = torch.cat([torch.zeros(400), torch.ones(20)]).bool()
    auto = fit_threshold(scores, is_drift=labels)
    assert auto.method == "f1" and auto.target_rate is None
    assert bool(auto.is_drift(drift).all())
    rate = fit_threshold(scores, is_drift=labels, method="rate")
    assert rate.threshold == calibrate_threshold(normal, TARGET)
    assert DriftThreshold.from_dict(auto.to_dict()) == auto
    with pytest.raises(ConfigError, match="f1"):
        fit_threshold(normal, method="f1")
    with pytest.raises(ConfigError, match="lib"):
        fit_threshold(normal, per_lib=True)
