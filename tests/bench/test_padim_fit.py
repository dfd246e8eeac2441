"""The cheap parts of the PaDiM fit benchmark: out-of-memory guard, point parsing, figures."""

from __future__ import annotations

import json

import pytest

from bench import padim_fit
from bench.padim_fit import oom_skip, parse_point, point_figures, predict_peak


def test_two_points_give_a_line() -> None:
    measured = [(100, 5.0), (200, 7.0)]  # 3 GiB + 0.02 GiB per image
    assert predict_peak(measured, 1000, fallback_slope=0.0) == pytest.approx(23.0)
    assert predict_peak(measured, 500, fallback_slope=0.0) == pytest.approx(13.0)
    reason = oom_skip(measured, 1000, 0.0, limit_gib=18.0)
    assert reason is not None and "23.0 GiB" in reason
    assert oom_skip(measured, 500, 0.0, limit_gib=18.0) is None


def test_least_squares_through_several_points() -> None:
    measured = [(100, 5.0), (200, 7.0), (300, 9.0), (400, 11.0)]
    assert predict_peak(measured, 1000, 0.0) == pytest.approx(23.0)


def test_flat_or_falling_peaks_do_not_extrapolate_downwards() -> None:
    measured = [(100, 4.0), (200, 3.9)]  # noise on a flat peak: slope clamped to 0
    assert predict_peak(measured, 2000, 0.0) == pytest.approx(3.95)


def test_one_point_uses_the_fallback_slope() -> None:
    measured = [(100, 5.0), (100, 4.5)]  # two runs of one size: the larger peak
    assert predict_peak(measured, 1000, fallback_slope=0.01) == pytest.approx(14.0)
    assert oom_skip(measured, 1400, 0.01, limit_gib=18.0) is None  # 18.0: not above
    assert oom_skip(measured, 1500, 0.01, limit_gib=18.0) is not None  # 19.0


def test_nothing_measured_runs() -> None:
    assert predict_peak([], 2000, 1.0) is None
    assert oom_skip([], 2000, 1.0, limit_gib=0.0) is None


def test_fallback_slope_of_stacking_is_twice_the_embedding() -> None:
    per_image = 550 * 32 * 32 * 4 / 2**30
    assert padim_fit.FALLBACK_SLOPE_GIB["stacking"] == pytest.approx(2 * per_image)
    assert padim_fit.FALLBACK_SLOPE_GIB["stream"] == 0.0


def test_parse_point_takes_the_last_json_line() -> None:
    point = {"method": "stream", "images": 64, "seconds": 12.5, "baseline_gib": 1.0,
             "peak_gib": 4.5, "delta_gib": 3.5, "threads": 2}
    stdout = "loading weights...\n{not json\n" + json.dumps(point) + "\n\n"
    assert parse_point(stdout) == point


def test_parse_point_rejects_missing_output_or_keys() -> None:
    with pytest.raises(ValueError, match="no JSON line"):
        parse_point("Traceback (most recent call last):\n  ...\n")
    with pytest.raises(ValueError, match="peak_gib"):
        parse_point(json.dumps({"method": "stream", "images": 64, "seconds": 1.0,
                                "baseline_gib": 1.0, "delta_gib": 0.5}))


def test_repeats_and_timeouts() -> None:
    assert [padim_fit.repeats_for(n, quick=False) for n in padim_fit.FULL_SIZES] == [
        3, 3, 3, 2, 2]
    assert {padim_fit.repeats_for(n, quick=True) for n in padim_fit.QUICK_SIZES} == {2}
    assert padim_fit.timeout_for(2000) > padim_fit.timeout_for(64) > 0


def test_point_figures_structure() -> None:
    runs = [{"seconds": 3.0, "peak_gib": 5.0, "delta_gib": 4.0},
            {"seconds": 1.0, "peak_gib": 6.0, "delta_gib": 4.5}]
    figures = point_figures("stacking", 64, runs)
    assert figures["method"] == "stacking" and figures["images"] == 64
    assert figures["seconds"]["runs"] == [3.0, 1.0] and figures["seconds"]["median"] == 2.0
    assert figures["peak_gib"]["unit"] == "GiB" and figures["peak_gib"]["max"] == 6.0
    assert figures["delta_gib"]["min"] == 4.0
