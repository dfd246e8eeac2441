"""The real-data benchmark's reading of a run summary and its goals."""

from pathlib import Path

import pytest

from bench.real_data import data_root, figures_of


def summary(escapes: int, macro_recall: float, auroc: float, false_drift: float) -> dict:
    report = {"pwa": 0.98, "floor": {"name": "blowhole", "pwa": 0.97}, "cost_ratio": 0.7,
              "macro_recall": macro_recall, "accuracy": 0.9, "escapes": escapes,
              "defect_images": 200, "escape_rate": escapes / 200, "false_alarms": 3,
              "good_images": 100, "false_alarm_rate": 0.03, "confusion": [[1]],
              "class_names": ["good"],
              "per_class": [{"name": "good", "images": 100, "predicted": 97, "recall": 0.97,
                             "precision": 1.0}]}
    return {"epochs": 3, "inspection": {"report": report, "classifier_only": dict(report),
                                        "drift_auroc": auroc, "false_drift_rate": false_drift,
                                        "drift_recall": 0.5}}


def test_goals_met_at_the_limits() -> None:
    goals = figures_of(summary(2, 0.95, 0.99, 0.01), 60.0)["goals"]  # 2/200 = 1%
    assert {name: g["met"] for name, g in goals.items()} == {
        "escape_rate": True, "macro_recall": True, "drift_auroc": True,
        "false_drift_rate": True}


def test_goals_missed_just_past_the_limits() -> None:
    figures = figures_of(summary(3, 0.949, 0.989, 0.0101), 90.0)
    assert not any(g["met"] for g in figures["goals"].values())
    assert figures["seconds"]["median"] == 90.0
    assert figures["per_class"] == [{"name": "good", "images": 100, "predicted": 97,
                                     "recall": 0.97}]


def test_missing_data_set_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=str(tmp_path)):
        data_root(str(tmp_path))
